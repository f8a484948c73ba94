"""Capacity matters on the embedded corpus: presets trained on the same pairs, side by side.

Each model trains on all stages with the same samples, batch, schedule and seed, then is
evaluated on the corpus's zero-shot tasks and retrieval split. Prints a Markdown table.

    python benchmarks/capacity.py [--models clip-tiny clip-small] [--samples 100000] [--precision bf16]
"""

from __future__ import annotations

import argparse
import time

from growclip.model import load_config, model_cost
from growclip.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["clip-tiny", "clip-small"])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--output", default="runs/capacity")
    args = parser.parse_args()
    rows = []
    for name in args.models:
        start = time.perf_counter()
        result = train(TrainConfig(model=name, samples=args.samples, lr=args.lr, precision=args.precision,
                                   output=f"{args.output}/{name}", progress=False))
        minutes = (time.perf_counter() - start) / 60
        params = model_cost(load_config(name)).params
        rows.append((name, params, result, minutes))
    tasks = list(rows[0][2].eval["zeroshot"])
    print(f"\n{args.samples} pairs, all stages, batch 128, lr {args.lr}, {args.precision}\n")
    print("| model | params | " + " | ".join(tasks) + " | **mean top-1** | I->T R@1 | T->I R@1 | minutes |")
    print("|---" * (len(tasks) + 6) + "|")
    for name, params, result, minutes in rows:
        zeroshot, summary = result.eval["zeroshot"], result.eval["summary"]
        cells = " | ".join(f"{zeroshot[t]['top1']:.3f}" for t in tasks)
        print(f"| `{name}` | {params / 1e6:.2f} M | {cells} | **{summary['zeroshot_mean_top1']:.3f}** | "
              f"{summary['image_to_text_R@1']:.3f} | {summary['text_to_image_R@1']:.3f} | {minutes:.1f} |")


if __name__ == "__main__":
    main()
