"""Automatic growth against fixed architectures at equal compute, on the embedded 4-stage stream.

Runs `--growth auto` from the start model, reads its total compute (training + search overhead,
from its `stream.json`), then trains two fixed models through the same stream for that same
compute: the start model and the architecture the search ended with, each with `--epochs`
scaled so that epochs x pairs x training FLOPs per pair matches. Prints one row per run.

    python benchmarks/growth_vs_fixed.py [--model growclip-seed] [--epochs 6] [--output runs/vs]

Also runs on a finished auto run (`--auto-run DIR`), training only the fixed baselines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from growclip.model import ModelConfig, load_config
from growclip.model.cost import train_flops_per_sample
from growclip.train import TrainConfig
from growclip.train.growing import train_stream


def run(name: str, settings: dict[str, Any], output: Path) -> tuple[list[dict[str, Any]], float]:
    start = time.perf_counter()
    history = train_stream(TrainConfig.from_dict({**settings, "output": str(output / name)}))
    return history, time.perf_counter() - start


def row(name: str, history: list[dict[str, Any]], seconds: float | None) -> str:
    last = history[-1]
    search = sum(r["search_tflop"] for r in history)
    decisions = " / ".join(r["decision"] for r in history[1:])
    wall = f"{seconds / 60:.1f} min" if seconds is not None else "-"
    return (f"| {name} | {decisions} | {last['params'] / 1e6:.3f} M | {last['total_tflop']:.2f} "
            f"({search / last['total_tflop']:.0%} search) | {last['zeroshot_mean_top1']:.3f} | "
            f"{last['image_to_text_R@1']:.3f} / {last['text_to_image_R@1']:.3f} | "
            f"{last['heldout_new_loss']:.3f} / {last['heldout_old_loss']:.3f} | {wall} |")


def equal_compute_epochs(config: ModelConfig, tflop: float, pairs_per_epoch: int) -> float:
    return tflop * 1e12 / (train_flops_per_sample(config) * pairs_per_epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="growclip-seed")
    parser.add_argument("--epochs", type=float, default=6.0, help="of the auto run")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--auto-run", help="a finished auto run folder to compare against (skips the auto run)")
    parser.add_argument("--output", default="runs/growth_vs_fixed")
    args = parser.parse_args()
    output = Path(args.output)
    base = {"model": args.model, "chunks": ["corpus"], "lr": args.lr, "progress": False}

    if args.auto_run:
        auto_dir, seconds = Path(args.auto_run), None
        auto = json.loads((auto_dir / "stream.json").read_text())
    else:
        auto_dir = output / "auto"
        auto, seconds = run("auto", {**base, "epochs": args.epochs}, output)
    rows = [row("auto", auto, seconds)]
    tflop = auto[-1]["total_tflop"]
    pairs_per_epoch = sum(r["pairs"] for r in auto)
    final = ModelConfig(**auto[-1]["architecture"])
    final_file = auto_dir / "final_architecture.json"
    final_file.write_text(json.dumps(final.to_dict()))
    for name, config, model in (("fixed start", load_config(args.model), args.model),
                                ("fixed final", final, str(final_file))):
        epochs = equal_compute_epochs(config, tflop, pairs_per_epoch)
        history, seconds = run(name.replace(" ", "_"), {**base, "model": model, "growth": "fixed", "epochs": epochs},
                               output)
        rows.append(row(f"{name}, --epochs {epochs:.2f}", history, seconds))
    print("| run | decisions before chunks 1-3 | final params | TFLOP | zero-shot mean top-1 | R@1 I->T / T->I "
          "| held-out loss new / old | wall |")
    print("|---|---|---:|---:|---:|---|---|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
