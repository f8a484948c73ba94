"""Does `growclip merge` pay? A model trained on corpus stages 0-1 (the "pretrained" start) is
continued on stages 2-3, kept as it is or grown first (PIM m = 1 and the streams' default 0.9), and
each trained model is interpolated with its start (`growth.merge`) at ratios 0, 0.1, ..., 1.

Old and new are the corpus's own split: zero-shot tasks on attribute families the start was taught
(shape, glyph, colour, size, texture, colour_shape) against those first told at stages 2-3
(position, background, count, relation), and the held-out contrastive loss on stages 0-1 against
2-3. Every seed's sweep is committed (`benchmarks/results/merge/`), read back on a rerun, and the
table in RESULTS.md is written again from them by `python -m benchmarks.results`.

    python -m benchmarks.merge_after_growth --seeds 0 1 2            # about 7 minutes a seed, bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.common import RESULTS, cpu_name, median_spread
from growclip.checkpoint import read_checkpoint, resolve_checkpoint
from growclip.cli import main as growclip
from growclip.data.corpus import NUM_STAGES
from growclip.eval.sets import EvalSetsConfig, evaluation_sets
from growclip.eval.suite import EvalResults, evaluate_sets
from growclip.growth.merge import interpolate
from growclip.train import TrainConfig, train
from growclip.train.merge import DEFAULT_RATIOS, endpoints
from growclip.train.run_folder import STREAM_RECORDS

SUMMARIES = RESULTS / "merge"
OLD_TASKS = ("shape", "glyph", "colour", "size", "texture", "colour_shape")  # families stages 0-1 introduce
NEW_TASKS = ("position", "background", "count", "relation")  # first told at stages 2-3
VARIANTS = {"kept": None, "grown, m=1": 1.0, "grown, m=0.9": 0.9}  # PIM m of the growth before stages 2-3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="clip-tiny")
    parser.add_argument("--grow", default="width=128", help="the growth step before stages 2-3 (exact)")
    parser.add_argument("--stage-sizes", default="8000,16000,16000,32000")
    parser.add_argument("--start-epochs", type=float, default=2.0, help="passes over stages 0-1")
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over stages 2-3")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--images-per-class", type=int, default=8)
    parser.add_argument("--retrieval-images", type=int, default=200)
    parser.add_argument("--output", default="runs/merge")
    return parser.parse_args()


def old_and_new(results: EvalResults) -> dict[str, float]:
    top1, heldout = results.top1(), list(results.heldout.values())  # held-out: one per stage, in order
    return {"old_top1": statistics.mean(top1[t] for t in OLD_TASKS),
            "new_top1": statistics.mean(top1[t] for t in NEW_TASKS),
            "old_heldout": statistics.mean(heldout[:2]), "new_heldout": statistics.mean(heldout[2:NUM_STAGES])}


def run_config(args: argparse.Namespace, seed: int, output: Path, **settings) -> TrainConfig:
    sizes = tuple(int(s) for s in args.stage_sizes.split(","))
    return TrainConfig.from_dict({"model": args.model, "stage_sizes": sizes, "seed": seed, "precision": args.precision,
                                  "eval_images_per_class": args.images_per_class,
                                  "retrieval_images": args.retrieval_images, "progress": False, "output": str(output),
                                  **settings})


def train_variant(args: argparse.Namespace, seed: int, folder: Path, start: Path, momentum: float | None) -> Path:
    """Stages 2-3 as a stream of two chunks from the start's weights (a schedule per chunk, each fully
    decayed), kept or grown first: -> the trained checkpoint."""
    if (folder / "run" / STREAM_RECORDS).is_file():  # finished before
        return resolve_checkpoint(folder / "run")
    begin = start
    if momentum is not None:
        begin = folder / "grown"
        growclip(["grow", "--checkpoint", str(start), "--op", args.grow, "--momentum", str(momentum),
                  "--seed", str(seed), "--output", str(begin), "--overwrite"])
    settings = dict(resume=str(begin), chunks=("corpus:2", "corpus:3"), growth="fixed", epochs=args.epochs)
    return train(run_config(args, seed, folder / "run", **settings)).checkpoint


def sweep(start: Path, trained: Path, args: argparse.Namespace) -> list[dict[str, float]]:
    """Old and new along the interpolation, on the corpus's evaluation sets."""
    first, last = read_checkpoint(start), read_checkpoint(trained)
    mapped, model, _ = endpoints(first, last)
    sets = evaluation_sets(EvalSetsConfig(corpus=True, corpus_seed=0, images_per_class=args.images_per_class,
                                          retrieval_images=args.retrieval_images), model.config.image_size)
    return [{"ratio": ratio, **old_and_new(evaluate_sets(interpolate(mapped, model, ratio), last.tokenizer, sets,
                                                           args.precision))} for ratio in DEFAULT_RATIOS]


def run_seed(args: argparse.Namespace, seed: int) -> dict:
    summary = SUMMARIES / f"seed{seed}.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    begun, root = time.perf_counter(), Path(args.output) / f"seed{seed}"
    start = train(run_config(args, seed, root / "start", stages=(0, 1), epochs=args.start_epochs,
                             overwrite=True)).checkpoint
    variants = {}
    for name, momentum in VARIANTS.items():
        trained = train_variant(args, seed, root / name.replace(", ", "-").replace("=", ""), start, momentum)
        variants[name] = {"params": sum(p.numel() for p in read_checkpoint(trained).model.parameters()),
                          "sweep": sweep(start, trained, args)}
        print(f"seed {seed}, {name}: " + ", ".join(f"{p['ratio']:.1f} {p['old_top1']:.3f}/{p['new_top1']:.3f}"
                                                    for p in variants[name]["sweep"]), flush=True)
    record = {"seed": seed, "cpu": cpu_name(), "minutes": (time.perf_counter() - begun) / 60,
              "settings": {k: v for k, v in vars(args).items() if k not in ("seeds", "output")}, "variants": variants}
    SUMMARIES.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _mean(point: dict[str, float]) -> float:
    return (point["old_top1"] + point["new_top1"]) / 2


def _gains(sweeps: list[list[dict[str, float]]], index: int) -> list[float]:
    """Mean of old and new top-1 at ratio `index` less the trained model's, seed by seed."""
    return [_mean(sweep[index]) - _mean(sweep[-1]) for sweep in sweeps]


def table(records: list[dict] | None = None) -> str:
    """Medians over the committed seeds [spread], per variant: the start (ratio 0), WiSE-FT's usual
    0.5, the one ratio whose median gain over the trained model is largest (chosen in hindsight, on
    these evaluation sets: an upper bound of what a choice on held-out data gets), and the trained
    model (ratio 1); the gain is paired, seed by seed."""
    records = records or [json.loads(p.read_text()) for p in sorted(SUMMARIES.glob("seed*.json"))]
    first = records[0]
    lines = [f"{len(records)} seeds ({', '.join(str(r['seed']) for r in records)}), {first['cpu']}, "
             f"{first['settings']['model']} grown by `{first['settings']['grow']}`, {first['settings']['precision']}; "
             f"{statistics.median(r['minutes'] for r in records):.0f} minutes a seed", "",
             "| variant | ratio | old top-1 | new top-1 | mean | gain over trained | old-stage held-out loss | "
             "new-stage held-out loss |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in VARIANTS:
        sweeps = [r["variants"][name]["sweep"] for r in records]
        last = len(sweeps[0]) - 1
        best = max(range(1, last), key=lambda i: statistics.median(_gains(sweeps, i)))
        for index in dict.fromkeys((0, DEFAULT_RATIOS.index(0.5), best, last)):
            points = [sweep[index] for sweep in sweeps]
            cells = [median_spread([p[k] for p in points]) for k in ("old_top1", "new_top1")]
            gains = _gains(sweeps, index)
            cells += [median_spread([_mean(p) for p in points]),
                      f"{statistics.median(gains):+.3f} [{min(gains):+.3f}, {max(gains):+.3f}]"]
            cells += [median_spread([p[k] for p in points]) for k in ("old_heldout", "new_heldout")]
            mark = " (best)" if index == best else ""
            lines.append(f"| {name} | {points[0]['ratio']:g}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    records = [run_seed(args, seed) for seed in args.seeds]
    print(table(records))


if __name__ == "__main__":
    main()
