"""Growth toward the compute-optimal size (`--growth frontier`) against fixed architectures, on a
stream in the regime the frontier shows: the embedded corpus's four stages as chunks of 420k
training samples each (all data so far replayed), so that the first chunk costs about 0.6 TFLOP at
the smallest rung, where width 8 is optimal, and the stream about 37, where width 48 with two
layers is (a 15x larger model; benchmarks/RESULTS.md, "The compute-optimal frontier").

Per seed: `frontier`, which starts at the packaged corpus frontier's first rung and grows toward
the rung optimal at each chunk's end; each `--fixed` rung through the same stream with the same
total compute (its samples per chunk scaled to match); with `--reference`, the last rung through
the stream with the growing run's samples per chunk (the from-scratch run whose quality the
growing run should reach at half the compute).

    python -m benchmarks.growth_frontier --seeds 0 1 2   # trains what is not committed yet
    python -m benchmarks.growth_frontier --report        # the tables from the committed runs only

Every finished run's summary (each chunk's record, the stream's held-out loss, the CPU) is kept
under benchmarks/results/growth_frontier/ and read back instead of trained again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, median_spread
from benchmarks.streams import Stream, add_stream_args, decisions, final, summary_table
from growclip.data.corpus import DEFAULT_STAGE_SIZES
from growclip.growth.frontier import ComputeFrontier
from growclip.model import load_config, train_flops_per_sample

COMMITTED = RESULTS / "growth_frontier"
CHUNK_SAMPLES = 420_000
FRONTIER_LR = 1e-3  # the frontier's own learning rate
# (label, key, lower is better) of the anytime tables
METRICS = (("held-out loss, all stages", "stream_heldout_loss", True),
           ("gallery R@1 image->text", "gallery_image_to_text_R@1", False),
           ("mean zero-shot top-1", "zeroshot_mean_top1", False))


def rung_models(output: Path) -> dict[str, str]:
    """The packaged frontier's rungs as config files a run can name, by rung name."""
    output.mkdir(parents=True, exist_ok=True)
    paths = {}
    for rung in ComputeFrontier.load().rungs:
        path = output / f"{rung.name}.json"
        path.write_text(json.dumps(rung.model.to_dict(), indent=1) + "\n")
        paths[rung.name] = str(path)
    return paths


def runs_for_seed(stream: Stream, seed: int, models: dict[str, str], fixed: list[str], reference: bool,
                  train: bool) -> dict[str, dict[str, Any]]:
    """Every run of one seed by its label; with `train` False, only the committed ones."""
    get = stream.run if train else stream.stored
    runs = {"frontier": get("frontier", seed, growth="frontier")}
    if runs["frontier"] is None:
        return {}
    budget = final(runs["frontier"])["total_tflop"]
    for name in fixed:
        samples = round(budget * 1e12 / (len(stream.stage_sizes) * train_flops_per_sample(load_config(models[name]))))
        runs[f"fixed {name}"] = get(f"fixed-{name}", seed, model=models[name], growth="fixed", chunk_samples=samples)
    if reference:
        last = list(models)[-1]
        runs[f"{last}, same samples"] = get(f"reference-{last}", seed, model=models[last], growth="fixed")
    return {label: run for label, run in runs.items() if run is not None}


def value_at(run: dict[str, Any], tflop: float, key: str) -> float | None:
    """`key` of `run` at `tflop` of compute: linear in log-compute between its chunk ends (where each
    chunk's learning rate has decayed); a chunk end within 2% counts as there (equal-compute runs end
    a rounding apart); None outside them."""
    points = [(record["total_tflop"], record[key]) for record in run["history"]]
    near = [v for c, v in points if math.isclose(c, tflop, rel_tol=0.02)]
    if near:
        return near[0]
    for (c0, v0), (c1, v1) in itertools.pairwise(points):
        if c0 <= tflop <= c1:
            return v0 + math.log(tflop / c0) / math.log(c1 / c0) * (v1 - v0)
    return None


def anytime_table(per_seed: list[dict[str, dict[str, Any]]], key: str, lower: bool) -> str:
    """After each of the growing run's chunks, every run at the same compute so far (median over seeds),
    and the growing run's gap to the best fixed run there."""
    labels = [label for label in per_seed[0] if label.startswith(("frontier", "fixed"))]
    lines = ["| after chunk | TFLOP | " + " | ".join(labels) + " | frontier - best fixed |",
             "|---" * (len(labels) + 3) + "|"]
    for chunk in range(len(per_seed[0]["frontier"]["history"])):
        tflop = statistics.median(s["frontier"]["history"][chunk]["total_tflop"] for s in per_seed)
        cells, gaps = [], []
        for label in labels:
            values = [value_at(s[label], s["frontier"]["history"][chunk]["total_tflop"], key) for s in per_seed]
            known = [v for v in values if v is not None]
            cells.append(f"{statistics.median(known):.3f}" if len(known) == len(values) else "-")
        for seed_runs in per_seed:
            grown = seed_runs["frontier"]["history"][chunk]
            fixed = [value_at(seed_runs[label], grown["total_tflop"], key) for label in labels[1:]]
            fixed = [v for v in fixed if v is not None]
            if fixed:
                best = min(fixed) if lower else max(fixed)
                gaps.append(grown[key] - best)
        gap = median_spread(gaps) if gaps else "-"
        lines.append(f"| {chunk} | {tflop:.2f} | " + " | ".join(cells) + f" | {gap} |")
    return "\n".join(lines)


def report(per_seed: list[dict[str, dict[str, Any]]], stream: Stream) -> str:
    runs = {label: [s[label] for s in per_seed] for label in per_seed[0]}
    cpus = sorted({run.get("cpu", "?") for seeds in runs.values() for run in seeds})
    sections = [stream.describe("fixed runs' samples per chunk scaled to the growing run's compute") +
                f"; CPU: {'; '.join(cpus)}", summary_table(runs), "Decisions: " + decisions(runs["frontier"])]
    for name, key, lower in METRICS:
        sections += [f"At equal compute so far, {name} (fixed runs read between their chunk ends):",
                     anytime_table(per_seed, key, lower)]
    return "\n\n".join(sections) + "\n"


def stream_of(args: argparse.Namespace) -> tuple[Stream, dict[str, str]]:
    models = rung_models(Path(args.output))
    args.model = models[next(iter(models))]
    return Stream.from_args(args), models


def table() -> str:
    """The committed runs at the default settings, for RESULTS.md."""
    parser = build_parser()
    args = parser.parse_args(["--report"])
    stream, models = stream_of(args)
    per_seed = [runs for seed in stream.seeds
                if (runs := runs_for_seed(stream, seed, models, args.fixed, args.reference, train=False))]
    return report(per_seed, stream) if per_seed else "no committed runs yet"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stream_args(parser, "runs/growth_frontier")
    parser.set_defaults(chunk_samples=CHUNK_SAMPLES, lr=FRONTIER_LR, results=str(COMMITTED),
                        stage_sizes=",".join(map(str, DEFAULT_STAGE_SIZES)))
    parser.add_argument("--fixed", nargs="*", default=["w48-l2"],
                        help="rungs trained fixed at the growing run's total compute")
    parser.add_argument("--reference", action="store_true",
                        help="also the last rung with the growing run's samples (the from-scratch reference)")
    parser.add_argument("--report", action="store_true", help="the tables from the committed runs; train nothing")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    stream, models = stream_of(args)
    per_seed = [runs for seed in stream.seeds
                if (runs := runs_for_seed(stream, seed, models, args.fixed, args.reference, not args.report))]
    if not per_seed:
        raise SystemExit(f"no committed runs in {stream.results}; run without --report to train them")
    print(report(per_seed, stream))


if __name__ == "__main__":
    main()
