"""What the growth benchmarks share: one stream setting, growing runs per policy and seed (a finished
run is read back from its folder, not trained again, so an interrupted benchmark picks up where it
stopped), held-out loss on every stage at each chunk's end, medians with their spread, and the
tables and plot they print.

The stream is the embedded corpus's four stages as chunks. The default, 4k/8k/16k/32k pairs with
2 epochs per chunk, is the main run's stream at half the pairs and a third of the epochs, so that
3 seeds of every policy fit in an hour on 2 CPU cores; `--stage-sizes 8000,16000,32000,64000
--epochs 6` is the main run's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.common import LR, cpu_name, median_spread
from growclip.checkpoint.files import checkpoint_path, load_checkpoint
from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet
from growclip.eval.heldout import heldout_loss
from growclip.train import TrainConfig, train
from growclip.train.sections import DataConfig, StreamConfig


def add_stream_args(parser: argparse.ArgumentParser, output: str) -> None:
    parser.add_argument("--model", default="growclip-seed", help="the start architecture")
    parser.add_argument("--stage-sizes", default="4000,8000,16000,32000", help="pairs per chunk (corpus stage)")
    parser.add_argument("--epochs", type=float, default=2.0, help="passes over each chunk's size per chunk")
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chunk-samples", type=int, help="training pairs per chunk (instead of --epochs)")
    parser.add_argument("--chunk-tflop", help="training compute per chunk, e.g. 0.5,2.6 (instead of --epochs)")
    parser.add_argument("--output", default=output, help="the runs' folders (checkpoints)")
    parser.add_argument("--results", help="a folder to keep finished runs' summaries in (committed, read back) "
                                          "instead of in their run folders")


@dataclass(frozen=True)
class Stream:
    """The stream and recipe every run of a benchmark shares; a run differs in policy and model."""

    model: str
    stage_sizes: tuple[int, ...]
    epochs: float
    lr: float
    precision: str
    seeds: tuple[int, ...]
    output: Path
    chunk_samples: int | None = None  # training pairs per chunk, else `epochs` x the chunk's size
    chunk_tflop: tuple[float, ...] = ()  # or training compute per chunk
    results: Path | None = None  # finished runs' summaries (committed), else each in its run folder

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Stream:
        """The stream of the parsed `add_stream_args` flags (folders are made by the first run)."""
        sizes = tuple(int(size) for size in args.stage_sizes.split(","))
        results = Path(args.results) if args.results else None
        budgets = tuple(float(tflop) for tflop in args.chunk_tflop.split(",")) if args.chunk_tflop else ()
        return cls(args.model, sizes, args.epochs, args.lr, args.precision, tuple(args.seeds), Path(args.output),
                   args.chunk_samples, budgets, results)

    def describe(self, detail: str) -> str:
        """A report's first line: the stream, the recipe and `detail` (what the benchmark varies)."""
        per_chunk = f"{self.chunk_samples} samples" if self.chunk_samples else f"{self.epochs:g} epochs"
        if self.chunk_tflop:
            per_chunk = f"{', '.join(f'{t:g}' for t in self.chunk_tflop)} TFLOP of training"
        return (f"embedded corpus, stages of {', '.join(map(str, self.stage_sizes))} pairs as "
                f"{len(self.stage_sizes)} chunks, {per_chunk} per chunk, start `{self.model}`, {detail}, "
                f"lr {self.lr:g}, {self.precision}, seeds {' '.join(map(str, self.seeds))}; medians [min-max]")

    @property
    def pairs(self) -> int:
        return sum(self.stage_sizes)

    def settings(self, name: str, seed: int, **overrides: Any) -> dict[str, Any]:
        """A run's `TrainConfig` settings: the stream's, with `overrides` (policy, model, epochs...)."""
        per_chunk = {"chunk_samples": self.chunk_samples} if self.chunk_samples else {"epochs": self.epochs}
        if self.chunk_tflop:
            per_chunk = {"chunk_tflop": list(self.chunk_tflop)}
        return {"model": self.model, "chunks": ["corpus"], "stage_sizes": list(self.stage_sizes), **per_chunk,
                "lr": self.lr, "precision": self.precision, "seed": seed, "progress": False, "keep_checkpoints": 0,
                "output": str(self.output / f"{name}-seed{seed}"), **overrides}

    def summary_path(self, name: str, seed: int) -> Path:
        if self.results is not None:
            return self.results / f"{name}-seed{seed}.json"
        return self.output / f"{name}-seed{seed}" / "bench.json"

    def stored(self, name: str, seed: int, **overrides: Any) -> dict[str, Any] | None:
        """The finished run's records if kept with the same settings (a default changed in `TrainConfig`
        is not seen: use a new --output), else None."""
        path = self.summary_path(name, seed)
        stored = json.loads(path.read_text()) if path.is_file() else None
        settings = json.loads(json.dumps(self.settings(name, seed, **overrides)))
        return stored if stored is not None and stored["settings"] == settings else None

    def run(self, name: str, seed: int, **overrides: Any) -> dict[str, Any]:
        """A growing run, or its finished records if kept (`stored`)."""
        stored = self.stored(name, seed, **overrides)
        if stored is not None:
            return stored
        settings = self.settings(name, seed, **overrides)
        folder = Path(settings["output"])
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted or stale run starts again
        start = time.perf_counter()
        records = train(TrainConfig.from_dict(settings)).chunks
        seconds = time.perf_counter() - start
        history = [{**r.to_dict(), "stream_heldout_loss": self.heldout_loss(folder, r.step)} for r in records]
        run = {"name": name, "seed": seed, "cpu": cpu_name(), "seconds": seconds, "settings": settings,
               "history": history}
        summary = self.summary_path(name, seed)
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps(run, indent=2) + "\n")
        return run

    def heldout_loss(self, folder: Path, step: int) -> float:
        """Mean contrastive loss on every stage's held-out pairs, of the checkpoint a chunk ended with:
        the same pairs at every chunk, so quality can be read along the stream."""
        model, tokenizer, _ = load_checkpoint(checkpoint_path(folder, step))
        sets = stage_heldouts(self.stage_sizes, model.config.image_size)
        return statistics.mean(heldout_loss(model, tokenizer, held, self.precision) for held in sets)


@cache
def stage_heldouts(stage_sizes: tuple[int, ...], image_size: int) -> list[RetrievalSet]:
    """Every stage's held-out pairs as a growing run holds them out (the default corpus seed and
    held-out size), rendered once per benchmark rather than at every chunk of every run."""
    corpus = EmbeddedCorpus(DataConfig.corpus_seed, image_size, stage_sizes)
    return [corpus.retrieval_set(StreamConfig.heldout, captions_per_image=1, stage=stage)
            for stage in range(len(stage_sizes))]


def final(run: dict[str, Any]) -> dict[str, Any]:
    """The run's end: its last chunk's record, with the wall time."""
    return {**run["history"][-1], "seconds": run["seconds"]}


def summary_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """One row per run label: medians over seeds (and the spread of mean zero-shot top-1)."""
    lines = ["| run | params | TFLOP (search) | **mean top-1** | I->T R@1 | T->I R@1 | gallery R@1 I->T / T->I "
             "| held-out loss all stages | held-out new / old | minutes |",
             "|---|---:|---:|---|---:|---:|---|---:|---|---:|"]
    for label, seeds in runs.items():
        ends = [final(r) for r in seeds]
        med = {key: statistics.median(e[key] for e in ends) for key in
               ("params", "total_tflop", "image_to_text_R@1", "text_to_image_R@1", "stream_heldout_loss",
                "heldout_new_loss", "heldout_old_loss", "seconds")}
        search = statistics.median(sum(c["search_tflop"] for c in r["history"]) / final(r)["total_tflop"]
                                   for r in seeds)
        lines.append(f"| {label} | {med['params'] / 1e6:.3f} M | {med['total_tflop']:.2f} ({search:.0%}) | "
                     f"**{median_spread([e['zeroshot_mean_top1'] for e in ends])}** | "
                     f"{med['image_to_text_R@1']:.3f} | {med['text_to_image_R@1']:.3f} | {gallery_recall(ends)} | "
                     f"{med['stream_heldout_loss']:.3f} | {med['heldout_new_loss']:.3f} / "
                     f"{med['heldout_old_loss']:.3f} | {med['seconds'] / 60:.1f} |")
    return "\n".join(lines)


def gallery_recall(ends: list[dict[str, Any]]) -> str:
    """R@1 over the corpus's 5,000-pair gallery, median over seeds ('-' for runs recorded before it)."""
    if not all("gallery_image_to_text_R@1" in e for e in ends):
        return "-"
    return " / ".join(f"{statistics.median(e[f'gallery_{way}_R@1'] for e in ends):.3f}"
                      for way in ("image_to_text", "text_to_image"))


def task_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Zero-shot top-1 per corpus task at the stream's end, median over seeds."""
    tasks = list(final(next(iter(runs.values()))[0])["zeroshot_top1"])
    lines = ["| run | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for label, seeds in runs.items():
        cells = [statistics.median(final(r)["zeroshot_top1"][t] for r in seeds) for t in tasks]
        lines.append(f"| {label} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def chunk_table(runs: dict[str, list[dict[str, Any]]], key: str = "zeroshot_mean_top1") -> str:
    """`key` after each chunk (median over seeds): where the best fixed model changes. The fixed runs
    of a seed share a budget and epochs per chunk, so they have spent the same compute at every chunk's end."""
    chunks = len(next(iter(runs.values()))[0]["history"])
    lines = ["| run | " + " | ".join(f"after chunk {c}" for c in range(chunks)) + " |", "|---" * (chunks + 1) + "|"]
    for label, seeds in runs.items():
        cells = [statistics.median(r["history"][c][key] for r in seeds) for c in range(chunks)]
        lines.append(f"| {label} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def decisions(seeds: list[dict[str, Any]]) -> str:
    """Each seed's decisions before chunks 1.., e.g. `seed 0: keep / width=64 (m=0.9) / keep`."""
    return "; ".join(f"seed {r['seed']}: " + " / ".join(c["decision"] for c in r["history"][1:]) for r in seeds)


def plot_curves(runs: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Mean zero-shot top-1 and all-stage held-out loss against compute, one line per run (seed median)."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, seeds in runs.items():
        chunks = range(len(seeds[0]["history"]))
        tflop = [statistics.median(r["history"][c]["total_tflop"] for r in seeds) for c in chunks]
        for axis, key in zip(axes, ("zeroshot_mean_top1", "stream_heldout_loss")):
            axis.plot(tflop, [statistics.median(r["history"][c][key] for r in seeds) for c in chunks], marker="o",
                      label=label)
    for axis, name in zip(axes, ("mean zero-shot top-1", "held-out loss, all stages")):
        axis.set_xlabel("training + search TFLOP")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(output: Path, report: str, runs: dict[str, list[dict[str, Any]]], extra: dict[str, Any],
                 name: str = "results") -> None:
    """Print the report; write it as NAME.md, with every run's records as NAME.json."""
    print("\n" + report)
    (output / f"{name}.md").write_text(report)
    (output / f"{name}.json").write_text(json.dumps({**extra, "runs": runs}, indent=2) + "\n")
