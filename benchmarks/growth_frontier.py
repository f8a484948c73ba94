"""Growth toward the compute-optimal size (`--growth frontier`) against fixed architectures, on a
stream in the regime the frontier shows.

The stream: the embedded corpus's four stages (8k, 16k, 32k, 64k pairs) as chunks, all data so far
replayed, each chunk with a training budget (`--chunk-tflop`, default 0.5, 2.6, 5, 16 TFLOP), so
that the run has spent 0.5, 3.1, 8.1 and 24.1 TFLOP at the chunks' ends: where the packaged corpus
frontier puts width 8 (0.012 M), width 16 (0.028 M) and width 48 with 2 layers (0.18 M), a 15x
larger model (benchmarks/RESULTS.md, "The compute-optimal frontier").

Per seed: `frontier`, which starts at the frontier's first rung and grows before each chunk toward
the rung optimal at the chunk's end (PIM m 0.9, the default; the variants `momentum=0.5` and
`momentum=0` the same with m 0.5, and with a fresh start at each growth); each `--fixed` rung
through the same stream with the same budgets, so every run has spent the same compute at every
chunk's end (`w8-l1:2`: its first 2 chunks only, where a small size stops being worth its hours).
The first fixed rung (the last rung of the frontier) is also the from-scratch reference: the
compute the growing run takes to reach its final quality.

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
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, median_spread, save_compute_figure
from benchmarks.growth_vs_fixed import parse_variant, tflop_to_reach
from benchmarks.streams import Stream, add_stream_args, decisions, final, summary_table
from growclip.data.corpus import DEFAULT_STAGE_SIZES
from growclip.growth.frontier import ComputeFrontier

COMMITTED = RESULTS / "growth_frontier"
CHUNK_TFLOP = "0.5,2.6,5,16"
FRONTIER_LR = 1e-3  # the frontier's own learning rate
FIXED = ["w48-l2", "w16-l1:2", "w8-l1:2"]
VARIANTS = ["momentum=0.5", "momentum=0"]  # PIM m 0.5: the copies pulled further apart; m 0: a fresh start
# (label, key, lower is better) of the anytime tables
METRICS = (("held-out loss, all stages", "stream_heldout_loss", True),
           ("gallery R@1 image->text", "gallery_image_to_text_R@1", False),
           ("mean zero-shot top-1", "zeroshot_mean_top1", False))


def rung_models(output: Path, write: bool) -> dict[str, str]:
    """The packaged frontier's rungs as config files a run can name (written where runs will read
    them), by rung name."""
    paths = {}
    for rung in ComputeFrontier.load().rungs:
        path = output / f"{rung.name}.json"
        if write:
            output.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rung.model.to_dict(), indent=1) + "\n")
        paths[rung.name] = str(path)
    return paths


def runs_for_seed(stream: Stream, seed: int, models: dict[str, str], fixed: list[str], variants: list[str],
                  train: bool) -> dict[str, dict[str, Any]]:
    """Every run of one seed by its label; with `train` False, only the committed ones."""
    get = stream.run if train else stream.stored
    runs = {"frontier": get("frontier", seed, growth="frontier")}
    for spec in variants:  # the growing run with other settings, e.g. momentum=0.5
        runs[f"frontier, {spec}"] = get(f"frontier-{spec}", seed, growth="frontier", **parse_variant(spec))
    for spec in fixed:
        name, _, chunks = spec.partition(":")
        stages = [f"corpus:{k}" for k in range(int(chunks))] if chunks else ["corpus"]
        runs[f"fixed {spec}"] = get(f"fixed-{spec.replace(':', '-')}", seed, model=models[name], growth="fixed",
                                    chunks=stages)
    return {label: run for label, run in runs.items() if run is not None}


def value_at(run: dict[str, Any], tflop: float, key: str) -> float | None:
    """`key` of `run` at `tflop` of compute: linear in log-compute between its chunk ends (where each
    chunk's learning rate has decayed); a chunk end within 2% counts as there (runs with the same
    budgets end a step's rounding apart); None outside them."""
    points = [(record["total_tflop"], record[key]) for record in run["history"]]
    near = [v for c, v in points if math.isclose(c, tflop, rel_tol=0.02)]
    if near:
        return near[0]
    for (c0, v0), (c1, v1) in itertools.pairwise(points):
        if c0 <= tflop <= c1:
            return v0 + math.log(tflop / c0) / math.log(c1 / c0) * (v1 - v0)
    return None


def run_labels(per_seed: list[dict[str, dict[str, Any]]]) -> list[str]:
    """Every run's label, in the order the seeds first name them."""
    return list(dict.fromkeys(label for runs in per_seed for label in runs))


def growing(labels: list[str]) -> list[str]:
    """The growing runs among a report's labels (the default and its variants)."""
    return [label for label in labels if not label.startswith("fixed")]


def gap_to_best_fixed(seed_runs: dict[str, dict[str, Any]], label: str, chunk: int, key: str, lower: bool
                      ) -> float | None:
    """How far the growing run `label` is from the best fixed run of its seed after its `chunk`, at
    the same compute (positive: ahead for a higher-is-better key, behind for a loss)."""
    grown = seed_runs[label]["history"][chunk]
    fixed = [value_at(run, grown["total_tflop"], key) for name, run in seed_runs.items() if name.startswith("fixed")]
    fixed = [v for v in fixed if v is not None]
    return grown[key] - (min(fixed) if lower else max(fixed)) if fixed else None


def anytime_table(per_seed: list[dict[str, dict[str, Any]]], key: str, lower: bool) -> str:
    """After each of the growing run's chunks, every run at the same compute so far (median over seeds;
    '-' where a run stopped earlier), and each growing run's gap to the best fixed run there."""
    labels = run_labels(per_seed)
    lines = ["| after chunk | TFLOP | " + " | ".join(labels + [f"{g} - best fixed" for g in growing(labels)]) + " |",
             "|---" * (len(labels) + len(growing(labels)) + 2) + "|"]
    for chunk in range(len(per_seed[0]["frontier"]["history"])):
        tflop = statistics.median(s["frontier"]["history"][chunk]["total_tflop"] for s in per_seed)
        cells = []
        for label in labels:
            values = [value_at(s[label], s["frontier"]["history"][chunk]["total_tflop"], key) for s in per_seed
                      if label in s]
            cells.append(f"{statistics.median(values):.3f}" if None not in values else "-")
        for label in growing(labels):
            gaps = [gap_to_best_fixed(s, label, chunk, key, lower) for s in per_seed if label in s]
            gaps = [gap for gap in gaps if gap is not None]
            cells.append(median_spread(gaps) if gaps else "-")
        lines.append(f"| {chunk} | {tflop:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reach_table(per_seed: list[dict[str, dict[str, Any]]], reference: str) -> str:
    """The compute each growing run takes to reach the reference's final quality (from scratch, the
    same budgets), as a share of the reference's compute, seed by seed; linear between chunk ends."""
    per_seed = [runs for runs in per_seed if reference in runs]
    lines = ["| run | metric | reference's end, by seed | reaches it at, by seed |", "|---|---|---|---|"]
    for label in growing(run_labels(per_seed)):
        for name, key, lower in METRICS:
            ends, reached = [], []
            for seed_runs in (runs for runs in per_seed if label in runs):
                end = final(seed_runs[reference])
                tflop, whole = tflop_to_reach(seed_runs[label]["history"], key, end[key], lower), end["total_tflop"]
                ends.append(f"{end[key]:.3f}")
                reached.append("not reached" if tflop is None else f"{tflop:.1f} TFLOP ({tflop / whole:.0%})")
            lines.append(f"| {label} | {name} | {', '.join(ends)} | {', '.join(reached)} |")
    return "\n".join(lines)


def labelled_by_seeds(per_seed: list[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
    """Runs committed for only some of the seeds keep their place, their label naming those seeds."""
    labels = run_labels(per_seed)
    seeds = {label: [s["frontier"]["seed"] for s in per_seed if label in s] for label in labels}
    named = {label: label if len(seeds[label]) == len(per_seed) else
             f"{label} (seed{'s' * (len(seeds[label]) > 1)} {', '.join(map(str, seeds[label]))})" for label in labels}
    return [{named[label]: runs[label] for label in labels if label in runs} for runs in per_seed]


def report(per_seed: list[dict[str, dict[str, Any]]], stream: Stream, fixed: list[str]) -> str:
    per_seed = labelled_by_seeds(per_seed)
    labels = run_labels(per_seed)
    runs = {label: [s[label] for s in per_seed if label in s] for label in labels}
    cpus = sorted({run.get("cpu", "?") for seeds in runs.values() for run in seeds})
    stream = replace(stream, seeds=tuple(s["frontier"]["seed"] for s in per_seed))  # the seeds committed
    sections = [stream.describe("fixed runs with the same budgets") + f"; CPU: {'; '.join(cpus)}",
                summary_table(runs), "Decisions: " + decisions(runs["frontier"])]
    for name, key, lower in METRICS:
        sections += [f"At equal compute so far, {name}:", anytime_table(per_seed, key, lower)]
    sections += ["Compute to reach the final rung's quality from scratch (the same stream and budgets):",
                 reach_table(per_seed, f"fixed {fixed[0]}")]
    return "\n\n".join(sections) + "\n"


def plot(per_seed: list[dict[str, dict[str, Any]]], path: Path) -> None:
    """Per-chunk curves: every run's metrics at its chunk ends against the compute so far, one line
    per seed, a colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_seed = labelled_by_seeds(per_seed)
    labels = run_labels(per_seed)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 4.2))
    for colour, label in enumerate(labels):
        for index, run in enumerate(runs[label] for runs in per_seed if label in runs):
            tflop = [record["total_tflop"] for record in run["history"]]
            for ax, (_, key, _) in zip(axes, METRICS):
                ax.plot(tflop, [record[key] for record in run["history"]], marker="o", color=f"C{colour}",
                        alpha=0.8, label=label if index == 0 else None)
    for ax, (_, _, lower) in zip(axes, METRICS):
        ax.set_yscale("log" if lower else "linear")
    save_compute_figure(fig, axes, [name for name, _, _ in METRICS], "training TFLOP so far", path)
    plt.close(fig)


def committed() -> list[dict[str, dict[str, Any]]]:
    """Every seed's committed runs at the default settings."""
    return collect(build_parser().parse_args(["--report"]), train=False)[1]


def collect(args: argparse.Namespace, train: bool) -> tuple[Stream, list[dict[str, dict[str, Any]]]]:
    """Every seed's runs (trained where missing, with `train`), and the stream they share."""
    models = rung_models(Path(args.output), write=train)
    args.model = models[next(iter(models))]
    stream = Stream.from_args(args)
    per_seed = [runs_for_seed(stream, seed, models, args.fixed, args.variants, train) for seed in stream.seeds]
    return stream, [runs for runs in per_seed if "frontier" in runs]


def table() -> str:
    """The committed runs at the default settings, for RESULTS.md."""
    args = build_parser().parse_args(["--report"])
    stream, per_seed = collect(args, train=False)
    return report(per_seed, stream, args.fixed) if per_seed else "no committed runs yet"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stream_args(parser, "runs/growth_frontier")
    parser.set_defaults(chunk_tflop=CHUNK_TFLOP, lr=FRONTIER_LR, results=str(COMMITTED),
                        stage_sizes=",".join(map(str, DEFAULT_STAGE_SIZES)))
    parser.add_argument("--fixed", nargs="*", default=FIXED,
                        help="rungs trained fixed with the same budgets (NAME:K: the first K chunks only); the "
                             "first is the from-scratch reference")
    parser.add_argument("--variants", nargs="*", default=VARIANTS,
                        help="more growing runs with other settings, e.g. momentum=0.5")
    parser.add_argument("--report", action="store_true", help="the tables from the committed runs; train nothing")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    stream, per_seed = collect(args, train=not args.report)
    if not per_seed:
        raise SystemExit(f"no committed runs in {stream.results}; run without --report to train them")
    print(report(per_seed, stream, args.fixed))


if __name__ == "__main__":
    main()
