"""The compute-optimal frontier on the embedded corpus: fixed sizes, each trained from scratch at
several training budgets with a fully decayed schedule; which size is best at each budget, and how
fast that size grows with compute (N_opt ∝ C^a, the IsoFLOP method of Chinchilla's approach 2).

    python -m benchmarks.frontier                           # the whole grid, seed 0 (finished runs are kept)
    python -m benchmarks.frontier --budgets 10 --seeds 1 2  # more seeds where the curves cross
    python -m benchmarks.frontier --report                  # table, fit and plot from the committed runs only
    python -m benchmarks.frontier --lr 2e-3 --results benchmarks/results/frontier-lr2e-3 --budgets 3

Every finished run's summary is committed under benchmarks/results/frontier/ and read back instead
of trained again, so the grid can be completed over several sessions and on several machines (each
summary names its CPU and precision). Runs shorter than --min-steps optimizer steps are skipped
(such a run measures its warm-up, not its size), and so are runs of more than --max-passes passes
over the corpus's 120k pairs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import BATCH, LR, RESULTS, cpu_name, parse_model, save_compute_figure
from benchmarks.compare_models import run_one
from growclip.data.corpus import DEFAULT_STAGE_SIZES
from growclip.model import model_cost, train_flops_per_sample

GRID = RESULTS / "frontier"  # the grid at the default settings
# name -> preset and overrides; widths keep 32-wide attention heads where they can
SIZES = {
    "w8-l1": "clip-small:width=8,embed_dim=8,heads=1,vision_layers=1,text_layers=1",
    "w16-l1": "clip-small:width=16,embed_dim=16,heads=1,vision_layers=1,text_layers=1",
    "w32-l1": "clip-small:width=32,embed_dim=32,heads=1,vision_layers=1,text_layers=1",
    "w48-l2": "clip-small:width=48,embed_dim=48,heads=2,vision_layers=2,text_layers=2",
    "w64-l2": "clip-tiny",
    "w96-l3": "clip-small:width=96,embed_dim=96,heads=3,vision_layers=3,text_layers=3",
    "w128-l4": "clip-small",
    "w192-l4": "clip-small:width=192,embed_dim=192,heads=6",
}
BUDGETS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # training TFLOP
METRICS = ("heldout_loss", "gallery_image_to_text_R@1", "zeroshot_mean_top1")


@dataclass(frozen=True)
class Point:
    """One size at one budget: the median over its seeds."""

    size: str
    params: float  # millions
    tflop: float
    seeds: int
    heldout_loss: float
    gallery_r1: float
    top1: float


def result_path(results: Path, size: str, tflop: float, seed: int) -> Path:
    return results / f"{size}-{tflop:g}T-seed{seed}.json"


def run_grid(args: argparse.Namespace) -> None:
    args.results.mkdir(parents=True, exist_ok=True)
    for tflop in args.budgets:
        for size in args.sizes:
            config = parse_model(SIZES[size])
            samples = int(tflop * 1e12 // train_flops_per_sample(config))
            steps = samples // BATCH
            passes = samples / sum(DEFAULT_STAGE_SIZES)
            if steps < args.min_steps or passes > args.max_passes:
                print(f"{size} at {tflop:g} TFLOP: {steps} steps, {passes:.1f} passes over the corpus: skipped",
                      flush=True)
                continue
            for seed in args.seeds:
                path = result_path(args.results, size, tflop, seed)
                if path.is_file():
                    continue
                args.warmup = max(1, min(args.max_warmup, steps // 10))
                run = run_one(f"{size}-{tflop:g}T", config, samples, seed, args)
                summary = {"size": size, "model": SIZES[size], "params_M": model_cost(config).params / 1e6,
                           "tflop": tflop, "steps": steps, "lr": args.lr, "warmup": args.warmup,
                           "precision": args.precision, "cpu": cpu_name(), **run}
                path.write_text(json.dumps(summary, indent=2) + "\n")
                print(f"{size} at {tflop:g} TFLOP seed {seed}: held-out loss {run['heldout_loss']:.3f}, "
                      f"mean top-1 {run['zeroshot_mean_top1']:.3f}, {run['minutes']:.1f} min", flush=True)


def read_points(results: Path) -> list[Point]:
    runs: dict[tuple[str, float], list[dict]] = {}
    for path in sorted(results.glob("*.json")):
        run = json.loads(path.read_text())
        runs.setdefault((run["size"], run["tflop"]), []).append(run)
    return [Point(size, rs[0]["params_M"], tflop, len(rs),
                  *(statistics.median(r[m] for r in rs) for m in METRICS))
            for (size, tflop), rs in sorted(runs.items(), key=lambda item: (item[0][1], item[1][0]["params_M"]))]


@dataclass(frozen=True)
class Optimum:
    """The compute-optimal size at one budget."""

    tflop: float
    params: float  # millions
    bound: str  # "=": an IsoFLOP minimum; "<=" / ">=": the smallest / largest size run was best

    @property
    def interior(self) -> bool:
        return self.bound == "="


def optimum(points: list[Point]) -> Optimum:
    """The size of least held-out loss at one budget, as a parabola in log N through the best and its
    neighbours (the IsoFLOP minimum), or the best size itself when it is the smallest or largest run."""
    points = sorted(points, key=lambda p: p.params)
    best = min(range(len(points)), key=lambda i: points[i].heldout_loss)
    if best in (0, len(points) - 1):
        return Optimum(points[best].tflop, points[best].params, "<=" if best == 0 else ">=")
    trio = points[best - 1 : best + 2]
    x = np.log([p.params for p in trio])
    a, b, _ = np.polyfit(x, [p.heldout_loss for p in trio], 2)
    vertex = -b / (2 * a) if a > 0 else x[1]
    return Optimum(trio[1].tflop, float(math.exp(np.clip(vertex, x[0], x[2]))), "=")


def optima(points: list[Point]) -> list[Optimum]:
    """One per budget where at least three sizes ran."""
    budgets = sorted({p.tflop for p in points})
    return [optimum(here) for c in budgets if len(here := [p for p in points if p.tflop == c]) >= 3]


def fit(found: list[Optimum]) -> tuple[float, float] | None:
    """(a, b) of log N_opt = a log C + b over the interior optima; None with fewer than three."""
    interior = [o for o in found if o.interior]
    if len(interior) < 3:
        return None
    a, b = np.polyfit(np.log([o.tflop for o in interior]), np.log([o.params for o in interior]), 1)
    return float(a), float(b)


def report(points: list[Point]) -> str:
    sizes = sorted({(p.params, p.size) for p in points})
    budgets = sorted({p.tflop for p in points})
    at = {(p.size, p.tflop): p for p in points}
    header = "| size | params | " + " | ".join(f"{c:g} TFLOP" for c in budgets) + " |"
    lines = ["held-out loss / gallery R@1 (I->T) / mean zero-shot top-1, median of the seeds (seeds run)", "",
             header, "|---" * (len(budgets) + 2) + "|"]
    for params, size in sizes:
        cells = [f"{p.heldout_loss:.3f} / {p.gallery_r1:.3f} / {p.top1:.3f} ({p.seeds})" if (p := at.get((size, c)))
                 else "-" for c in budgets]
        lines.append(f"| {size} | {params:.2f} M | " + " | ".join(cells) + " |")
    lines += ["", "| TFLOP | sizes run | N_opt by held-out loss (IsoFLOP fit) | best by gallery R@1 | "
              "best by mean top-1 |", "|---|---|---|---|---|"]
    found = optima(points)
    for best in found:
        here = [p for p in points if p.tflop == best.tflop]
        best_r1, best_top1 = max(here, key=lambda p: p.gallery_r1), max(here, key=lambda p: p.top1)
        bound = "" if best.interior else f"{best.bound} "
        lines.append(f"| {best.tflop:g} | {len(here)} | {bound}{best.params:.3f} M | {best_r1.size} | "
                     f"{best_top1.size} |")
    lines += ["", growth(found)]
    return "\n".join(lines)


def growth(found: list[Optimum]) -> str:
    """The most the optimum is known to grow between two budgets (an upper bound or a fit at the lower
    budget, a lower bound or a fit at the higher), and the fitted exponent."""
    interior = sum(o.interior for o in found)
    line = fit(found)
    exponent = (f"fitted over the {interior} interior optima, N_opt ∝ C^{line[0]:.2f}." if line else
                f"{interior} budgets have an interior optimum, fewer than the three an exponent needs.")
    known = [(high.params / low.params, low, high) for low in found for high in found
             if low.tflop < high.tflop and low.bound in ("=", "<=") and high.bound in ("=", ">=")]
    if not known:
        return "No growth of the optimum follows from the bounds measured; " + exponent
    ratio, low, high = max(known, key=lambda item: item[0])
    at_least = "" if low.interior and high.interior else "at least "
    return (f"N_opt grows {at_least}{ratio:.1f}x from {low.tflop:g} to {high.tflop:g} TFLOP "
            f"({high.tflop / low.tflop:.0f}x the compute); " + exponent)


def plot(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    for params, size in sorted({(p.params, p.size) for p in points}):
        mine = sorted((p for p in points if p.size == size), key=lambda p: p.tflop)
        for ax, values in zip(axes, ([p.heldout_loss for p in mine], [p.gallery_r1 for p in mine],
                                     [p.top1 for p in mine])):
            ax.plot([p.tflop for p in mine], values, marker="o", label=f"{size} ({params:.2f} M)")
    found = optima(points)
    for bound, marker, label in (("=", "o", "IsoFLOP minimum"), ("<=", "v", "smallest size run (an upper bound)"),
                                 (">=", "^", "largest size run (a lower bound)")):
        mine = [o for o in found if o.bound == bound]
        axes[3].scatter([o.tflop for o in mine], [o.params for o in mine], marker=marker, label=label)
    if (line := fit(found)) is not None:
        budgets = np.array(sorted({o.tflop for o in found}))
        axes[3].plot(budgets, np.exp(line[1]) * budgets ** line[0], "k--", label=f"N_opt ∝ C^{line[0]:.2f}")
    axes[3].set_yscale("log")
    axes[3].set_ylabel("parameters (M)")
    axes[3].legend(fontsize=8)
    save_compute_figure(fig, axes, ["held-out contrastive loss", "gallery R@1 image->text (5,000 pairs)",
                                    "mean zero-shot top-1 (10 tasks)", "compute-optimal size"], "training TFLOP", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS), help="training TFLOP")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--min-steps", type=int, default=30, help="skip shorter runs: they measure their warm-up")
    parser.add_argument("--max-passes", type=float, default=8,
                        help="skip runs that would read the corpus more often: slow, and they measure repetition")
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--max-warmup", type=int, default=50, help="warm-up: a tenth of the steps, at most this")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--output", help="the runs' folders (checkpoints, metrics); default runs/<results' name>")
    parser.add_argument("--results", type=Path, default=GRID,
                        help="where the finished runs' summaries are kept (another folder for other settings)")
    parser.add_argument("--report", action="store_true", help="only the table, fit and plot of committed runs")
    args = parser.parse_args()
    args.eval_at = None
    args.output = args.output or f"runs/{args.results.name}"  # run_one reads a finished run back from here
    if not args.report:
        run_grid(args)
    points = read_points(args.results)
    if not points:
        raise SystemExit(f"no finished runs in {args.results}")
    print(report(points))
    figure = args.results.with_suffix(".png")
    plot(points, figure)
    print(f"\nplot: {figure}")


if __name__ == "__main__":
    main()
