"""Automatic growth against fixed architectures at equal compute, and the compute growth needs to
reach a from-scratch model's quality, on the embedded corpus as a stream of 4 chunks.

Per seed:
  - `auto`: the search decides before chunks 1-3; its total compute (training + search) is the budget;
  - `fixed`: the start model, the architecture `auto` ended with, and `--fixed` others, each trained
    through the same stream for the same total compute (`--epochs` scaled to match);
  - `schedule`: a hand-made growth (`--schedule`), `scratch`: search, then retrain the chosen
    architecture from zero before every chunk;
  - `auto's growth at chunk 1`: every operator `auto` grew by, all applied before chunk 1 (same
    pairs as `auto`): the best case of growing into `auto`'s final architecture;
  - `final, same pairs`: `auto`'s final architecture from zero through the stream with the same
    pairs as `auto` (not the same compute): the from-scratch reference. The compute `auto` spends
    to reach its mean zero-shot top-1 and its held-out loss is read along `auto`'s chunks (linear
    between chunk ends; "not reached" when `auto` ends below it).

    python -m benchmarks.growth_vs_fixed --seeds 0 1 2 [--fixed clip-tiny growclip-start]

Prints the tables (medians over seeds, spread in brackets) and writes results.md, results.json and
curves.png to --output. See `benchmarks/streams.py` for the stream and for reading back finished runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.streams import (
    Stream,
    add_stream_args,
    chunk_table,
    decisions,
    final,
    plot_curves,
    summary_table,
    task_table,
    write_report,
)
from growclip.model import ModelConfig, load_config
from growclip.model.cost import train_flops_per_sample


def equal_compute_epochs(stream: Stream, config: ModelConfig, tflop: float) -> float:
    return tflop * 1e12 / (train_flops_per_sample(config) * stream.pairs)


def final_architecture(stream: Stream, auto: dict[str, Any]) -> str:
    path = stream.output / f"auto-final-seed{auto['seed']}.json"
    path.write_text(json.dumps(auto["history"][-1]["architecture"]) + "\n")
    return str(path)


def grown_ops(run: dict[str, Any]) -> list[str]:
    """Every operator a run grew by, in order, read from its decisions (`mlp_ratio=4 (m=0.9)`, `keep`)."""
    return [op for record in run["history"][1:] if record["decision"] != "keep"
            for op in record["decision"].rsplit(" (m=", 1)[0].split()]


def parse_variant(spec: str) -> dict[str, Any]:
    """`cost_weight=0.2,search_momenta=1:0.9` -> the growing run's settings (numbers and lists parsed)."""
    settings = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        number = [int(v) if v.isdigit() else float(v) for v in value.split(":")]
        settings[key] = number if key == "search_momenta" else number[0]
    return settings


def runs_for_seed(stream: Stream, seed: int, fixed: list[str], schedule: list[str], variants: list[str],
                  skip: list[str]) -> dict[str, dict[str, Any]]:
    """Every run of one seed, keyed by its label in the tables (but the `skip`ped groups)."""
    auto = stream.run("auto", seed, growth="auto")
    budget = final(auto)["total_tflop"]
    final_model = final_architecture(stream, auto)
    runs = {"auto": auto}
    starts = [] if "start" in skip else [("start", stream.model)]
    for label, model in [*starts, ("auto's final", final_model), *((f, f) for f in fixed)]:
        epochs = equal_compute_epochs(stream, load_config(model), budget)
        name = "fixed-final" if model == final_model else f"fixed-{Path(model).stem}"
        runs[f"fixed {label}"] = stream.run(name, seed, model=model, growth="fixed", epochs=epochs)
    if "schedule" not in skip:
        runs["schedule"] = stream.run("schedule", seed, growth="schedule", grow_schedule=schedule)
    if "at_once" not in skip:  # a seed whose `auto` kept the start model gets the start model, same pairs
        ops = grown_ops(auto)
        runs["auto's growth at chunk 1"] = stream.run("schedule-final-at-1", seed,
                                                      growth="schedule" if ops else "fixed",
                                                      grow_schedule=[f"1:{op}" for op in ops])
    if "scratch" not in skip:
        runs["scratch"] = stream.run("scratch", seed, growth="scratch")
    if "reference" not in skip:
        runs["final, same pairs"] = stream.run("final-same-pairs", seed, model=final_model, growth="fixed")
    for spec in variants:  # the search with other settings, same pairs as auto
        runs[f"auto, {spec}"] = stream.run(f"auto-{spec}", seed, growth="auto", **parse_variant(spec))
    return runs


def tflop_to_reach(history: list[dict[str, Any]], key: str, target: float, lower_is_better: bool) -> float | None:
    """Compute at which the run first reaches `target`, linear between chunk ends; None if never."""
    sign = -1.0 if lower_is_better else 1.0
    before = None
    for record in history:
        value, tflop = sign * record[key], record["total_tflop"]
        if value >= sign * target:
            if before is None:  # reached with the first chunk
                return tflop
            share = (sign * target - before[0]) / (value - before[0])
            return before[1] + share * (tflop - before[1])
        before = (value, tflop)
    return None


def compute_to_target(auto: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """`auto`'s compute to reach the from-scratch reference's end, as a share of the reference's."""
    ref = final(reference)
    row = {"seed": auto["seed"], "reference_tflop": ref["total_tflop"], "auto_tflop": final(auto)["total_tflop"],
           "auto_minutes": final(auto)["seconds"] / 60, "reference_minutes": ref["seconds"] / 60}
    for key, lower in (("zeroshot_mean_top1", False), ("stream_heldout_loss", True)):
        reached = tflop_to_reach(auto["history"], key, ref[key], lower)
        row[key] = {"target": ref[key], "tflop": reached,
                    "share": None if reached is None else reached / ref["total_tflop"]}
    return row


def target_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| seed | from-scratch TFLOP | its mean top-1 | auto reaches it at | its held-out loss | "
             "auto reaches it at | auto / scratch minutes |", "|---|---:|---:|---|---:|---|---|"]
    for row in rows:
        cells = []
        for key in ("zeroshot_mean_top1", "stream_heldout_loss"):
            hit = row[key]
            reach = "not reached" if hit["tflop"] is None else f"{hit['tflop']:.2f} TFLOP ({hit['share']:.0%})"
            cells += [f"{hit['target']:.3f}", reach]
        lines.append(f"| {row['seed']} | {row['reference_tflop']:.2f} | " + " | ".join(cells)
                     + f" | {row['auto_minutes']:.1f} / {row['reference_minutes']:.1f} |")
    shares = [row["zeroshot_mean_top1"]["share"] for row in rows]
    if all(s is not None for s in shares):
        lines.append(f"\nmedian share of the from-scratch compute to reach its mean top-1: "
                     f"{statistics.median(shares):.0%}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stream_args(parser, "runs/growth_vs_fixed")
    parser.add_argument("--fixed", nargs="*", default=["growclip-start", "clip-tiny"],
                        help="more fixed architectures (presets or .json) at the same compute")
    parser.add_argument("--schedule", nargs="+", default=["1:width=64", "2:vision_layers+1", "3:text_layers+1"],
                        help="the hand-made growth, K:OP items as --grow-schedule")
    parser.add_argument("--variants", nargs="*", default=[],
                        help="more auto runs with other search settings, e.g. cost_weight=0.2 search_momenta=1:0.9")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["start", "schedule", "at_once", "scratch", "reference"],
                        help="run groups to leave out (start: the start model fixed; at_once: auto's growth "
                             "all before chunk 1; reference: the final architecture from zero, same pairs)")
    args = parser.parse_args()
    stream = Stream.from_args(args)
    per_seed = [runs_for_seed(stream, seed, args.fixed, args.schedule, args.variants, args.skip)
                for seed in stream.seeds]
    runs = {label: [seed_runs[label] for seed_runs in per_seed] for label in per_seed[0]}
    sections = [stream.describe("fixed runs' epochs scaled to auto's compute"), summary_table(runs),
                "Per task (zero-shot top-1, medians):", task_table(runs),
                "After each chunk (mean zero-shot top-1, medians):", chunk_table(runs),
                "After each chunk (held-out loss on that chunk's pairs, medians):",
                chunk_table(runs, "heldout_new_loss"),
                "Decisions: " + "\n".join(f"{label}: {decisions(runs[label])}" for label in ("auto", "scratch")
                                           if label in runs)]
    targets = []
    if "final, same pairs" in runs:
        targets = [compute_to_target(s["auto"], s["final, same pairs"]) for s in per_seed]
        sections += ["Compute to reach the final architecture trained from scratch with the same pairs:",
                     target_table(targets)]
    report = "\n\n".join(sections) + "\n"
    plot_curves(runs, stream.output / "curves.png", "growth vs fixed architectures")
    write_report(stream.output, report, runs, {"settings": vars(args), "compute_to_target": targets})


if __name__ == "__main__":
    main()
