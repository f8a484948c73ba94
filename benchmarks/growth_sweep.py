"""One growth step at the same point of the stream, trained on to the stream's end: which dimension
pays most per FLOP added, and which PIM momentum m.

Every run starts from the same model and trains through the same stream with the same pairs; one
grows by OP with PIM m before chunk `--at` (a `--growth schedule` run), the reference ("keep")
never grows. Per run, medians over seeds: mean zero-shot top-1 and R@1 at the end, the all-stage
held-out loss, and the gain over "keep" per TFLOP of compute added.

    python -m benchmarks.growth_sweep --ops width=64 mlp_ratio=4 vision_layers+1 text_layers+1 \\
        shared_layers+1 heads=2 share                            # the dimensions, at m = 0.9
    python -m benchmarks.growth_sweep --ops width=64 --momenta 1 0.95 0.9 0.7 0.5 0   # PIM

Runs shared by both (the same op, m and seed) are trained once. Writes results-OPS-MOMENTA.md,
.json and curves-OPS-MOMENTA.png to --output (see `benchmarks/streams.py` for the stream).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks.streams import Stream, add_stream_args, final, plot_curves, summary_table, task_table, write_report

KEEP = "keep"


def sweep(stream: Stream, ops: list[str], momenta: list[float], at: int) -> dict[str, list[dict[str, Any]]]:
    runs = {KEEP: [stream.run(KEEP, seed, growth="fixed") for seed in stream.seeds]}
    for op in ops:
        for m in momenta:
            runs[f"{op} m={m:g}"] = [stream.run(f"{op}-m{m:g}", seed, growth="schedule", grow_schedule=[f"{at}:{op}"],
                                                momentum=m) for seed in stream.seeds]
    return runs


def gain_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Per grown run, against "keep" of the same seed: points of mean top-1 and of R@1 gained, and
    the median gain per median TFLOP the growth added (none for heads and share, which add none)."""
    lines = ["| run | TFLOP added | mean top-1 gain (points) | per TFLOP added | I->T R@1 gain "
             "| held-out loss change |", "|---|---:|---|---:|---:|---:|"]
    keep = {r["seed"]: final(r) for r in runs[KEEP]}
    for label, seeds in runs.items():
        if label == KEEP:
            continue
        ends = [(final(r), keep[r["seed"]]) for r in seeds]
        added = statistics.median(e["total_tflop"] - k["total_tflop"] for e, k in ends)
        gains = [100 * (e["zeroshot_mean_top1"] - k["zeroshot_mean_top1"]) for e, k in ends]
        per = f"{statistics.median(g / added for g in gains):+.1f}" if added > 0.01 else "- (no FLOPs added)"
        r1 = statistics.median(100 * (e["image_to_text_R@1"] - k["image_to_text_R@1"]) for e, k in ends)
        loss = statistics.median(e["stream_heldout_loss"] - k["stream_heldout_loss"] for e, k in ends)
        spread = f" [{min(gains):+.1f} to {max(gains):+.1f}]" if len(gains) > 1 else ""
        lines.append(f"| {label} | {added:.2f} | {statistics.median(gains):+.1f}{spread} | {per} | "
                     f"{r1:+.1f} | {loss:+.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stream_args(parser, "runs/growth_sweep")
    parser.add_argument("--ops", nargs="+", default=["width=64", "mlp_ratio=4", "vision_layers+1", "text_layers+1",
                                                     "shared_layers+1", "heads=2", "share"])
    parser.add_argument("--momenta", type=float, nargs="+", default=[0.9], help="PIM m of each growth")
    parser.add_argument("--at", type=int, default=1, help="the chunk the growth comes before")
    args = parser.parse_args()
    stream = Stream.from_args(args)
    runs = sweep(stream, args.ops, args.momenta, args.at)
    header = stream.describe(f"growth before chunk {args.at}")
    report = "\n\n".join([header, summary_table(runs), "Against keep, same seed (medians):", gain_table(runs),
                          "Per task (zero-shot top-1, medians):", task_table(runs)]) + "\n"
    name = "-".join(args.ops + [f"m{m:g}" for m in args.momenta]).replace("=", "")
    plot_curves(runs, stream.output / f"curves-{name}.png", "one growth step")
    write_report(stream.output, report, runs, {"settings": vars(args)}, f"results-{name}")


if __name__ == "__main__":
    main()
