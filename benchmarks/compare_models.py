"""Architectures side by side on the embedded corpus: the same pairs (or the same training compute),
batch, schedule and seeds; medians over the seeds. Capacity (clip-tiny < clip-small < clip-base?)
and MS-CLIP's parts (shared encoder, conv stem, parallel branch, each on and off) are both this.

    python -m benchmarks.compare_models --models clip-tiny clip-small clip-base --seeds 0 1 2
    python -m benchmarks.compare_models --equal-compute --models clip-small shared-small msclip-small \\
        msclip-small:parallel_branch=false msclip-small:stem=patch

A model is a preset or config .json, optionally with `:field=value,...` overrides. With
`--equal-compute` every model trains for the training FLOPs that the first one (or `--budget-model`)
spends on `--samples` pairs. Prints Markdown tables (medians, then every run) and writes them with JSON to --output.
A run whose folder holds its `run.json` is read back, not trained again: seeds can be added to a comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.common import BATCH, LR, parse_model
from growclip.model import ModelConfig, model_cost, train_flops_per_sample
from growclip.train import TrainConfig, train
from growclip.train.metrics import read_metrics

SUMMARY = ("zeroshot_mean_top1", "image_to_text_R@1", "text_to_image_R@1")
CAPACITY = ("gallery_image_to_text_R@1", "gallery_text_to_image_R@1", "heldout_loss")  # runs before them lack them


def run_one(spec: str, config: ModelConfig, samples: int, seed: int, args: argparse.Namespace) -> dict:
    out = Path(args.output) / f"{spec.replace(':', '_').replace('=', '-').replace(',', '_')}-seed{seed}"
    if (out / "run.json").is_file():  # finished before: read back, so that seeds can be added later
        return with_int_curve(json.loads((out / "run.json").read_text()))
    out.mkdir(parents=True, exist_ok=True)
    config.to_json(out / "model.json")
    start = time.perf_counter()
    every = args.eval_at // BATCH if args.eval_at else None
    result = train(TrainConfig(model=str(out / "model.json"), samples=samples, lr=args.lr, warmup=args.warmup,
                               precision=args.precision, compile=args.compile, seed=seed, output=str(out),
                               progress=False, eval_every=every, overwrite=True))  # an unfinished run: again
    midway = [r for r in read_metrics(out / "metrics.jsonl") if "zeroshot_mean_top1" in r and not r.get("final")]
    run = {"seed": seed, "samples": samples, "precision": args.precision, "minutes": (time.perf_counter() - start) / 60,
           "tasks": result.eval.top1(),
           "curve": {r["samples"]: r["zeroshot_mean_top1"] for r in midway},
           **{k: result.eval.summary[k] for k in (*SUMMARY, *CAPACITY) if k in result.eval.summary}}
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return run


def with_int_curve(run: dict) -> dict:
    """A run read from JSON, whose curve's keys (pairs) came back as strings."""
    return {**run, "curve": {int(samples): top1 for samples, top1 in run["curve"].items()}}


def read_summary(path: Path) -> dict[str, list[dict]]:
    """The runs of a committed `compare.json`, by model spec."""
    runs = json.loads(path.read_text())["runs"]
    return {spec: [with_int_curve(run) for run in seeds] for spec, seeds in runs.items()}


def median_table(runs: dict[str, list[dict]]) -> str:
    """One row per model: the median over its seeds."""
    return table([(f"`{spec}`" + precision_note(seeds) + (" (median)" if len(seeds) > 1 else ""), parse_model(spec),
                   median(seeds)) for spec, seeds in runs.items()])


def precision_note(runs: list[dict]) -> str:
    """" in bf16" where a model's runs were not fp32 (runs written before precision was recorded: "")."""
    precisions = {run.get("precision", "fp32") for run in runs}
    return "" if precisions == {"fp32"} else f" in {'/'.join(sorted(precisions))}"


def table(rows: list[tuple[str, ModelConfig, dict]]) -> str:
    tasks = list(rows[0][2]["tasks"])
    lines = ["| model | params | pairs | " + " | ".join(tasks) + " | **mean top-1** | I->T R@1 | T->I R@1 | "
             "gallery R@1 I->T / T->I | held-out loss | minutes |", "|---" * (len(tasks) + 9) + "|"]
    for label, config, row in rows:
        cells = " | ".join(f"{row['tasks'][t]:.3f}" for t in tasks)
        gallery = (f"{row['gallery_image_to_text_R@1']:.3f} / {row['gallery_text_to_image_R@1']:.3f}"
                   if "gallery_image_to_text_R@1" in row else "-")
        heldout = f"{row['heldout_loss']:.3f}" if "heldout_loss" in row else "-"
        lines.append(f"| {label} | {model_cost(config).params / 1e6:.2f} M | {row['samples']:,} | {cells} | "
                     f"**{row['zeroshot_mean_top1']:.3f}** | {row['image_to_text_R@1']:.3f} | "
                     f"{row['text_to_image_R@1']:.3f} | {gallery} | {heldout} | {row['minutes']:.1f} |")
    return "\n".join(lines)


def curves(runs: dict[str, list[dict]]) -> str:
    """Mean zero-shot top-1 at each evaluation point, median over the seeds (the last point: the end)."""
    points = sorted({int(p) for rs in runs.values() for r in rs for p in r["curve"]})
    lines = ["| model | " + " | ".join(f"{p:,} pairs" for p in points) + " | end |", "|---" * (len(points) + 2) + "|"]
    for spec, rs in runs.items():
        cells = [statistics.median(r["curve"][p] for r in rs) if all(p in r["curve"] for r in rs) else None
                 for p in points]
        lines.append(f"| `{spec}` | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells)
                     + f" | {statistics.median(r['zeroshot_mean_top1'] for r in rs):.3f} |")
    return "mean zero-shot top-1 along training (median of the seeds):\n\n" + "\n".join(lines)


def median(runs: list[dict]) -> dict:
    keys = [k for k in (*SUMMARY, *CAPACITY, "minutes", "samples") if all(k in r for r in runs)]
    return {**{k: statistics.median(r[k] for r in runs) for k in keys},
            "tasks": {t: statistics.median(r["tasks"][t] for r in runs) for t in runs[0]["tasks"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["clip-tiny", "clip-small", "clip-base"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=30_000, help="training pairs (of the first model)")
    parser.add_argument("--equal-compute", action="store_true", help="same training FLOPs for every model")
    parser.add_argument("--budget-model", help="whose --samples set the compute budget (default: the first model)")
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model for training")
    parser.add_argument("--eval-at", type=int, help="also evaluate every this many pairs (the learning curve, "
                        "printed as mean top-1 at each point)")
    parser.add_argument("--output", default="runs/compare")
    args = parser.parse_args()
    configs = {spec: parse_model(spec) for spec in args.models}
    budget = args.samples * train_flops_per_sample(parse_model(args.budget_model or args.models[0]))
    runs: dict[str, list[dict]] = {}
    for spec, config in configs.items():
        samples = budget // train_flops_per_sample(config) if args.equal_compute else args.samples
        runs[spec] = [run_one(spec, config, samples, seed, args) for seed in args.seeds]
        print(f"{spec}: mean top-1 " + " ".join(f"{r['zeroshot_mean_top1']:.3f}" for r in runs[spec]), flush=True)
    basis = "equal training compute" if args.equal_compute else "equal pairs"
    header = (f"corpus, all stages, {basis}, batch {BATCH}, lr {args.lr}, warm-up {args.warmup}, {args.precision}"
              + (", compiled" if args.compile else "") + ", "
              f"seeds {' '.join(map(str, args.seeds))}")
    medians = median_table(runs)
    every = table([(f"`{s}` seed {r['seed']}", configs[s], r) for s, rs in runs.items() for r in rs])
    report = f"{header}\n\n{medians}\n\nEvery run:\n\n{every}\n"
    if args.eval_at:
        report += "\n" + curves(runs) + "\n"
    print("\n" + report)
    Path(args.output, "compare.md").write_text(report)
    Path(args.output, "compare.json").write_text(json.dumps({"settings": vars(args), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
