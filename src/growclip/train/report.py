"""A run's report: PNG plots against samples seen and a Markdown summary, from its metrics.jsonl."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from growclip.data.pairs import format_skipped
from growclip.eval.suite import FORGETTING, MEAN_TOP1, RECALL, RETAINED_TOP1
from growclip.train.metrics import read_metrics
from growclip.train.records import ChunkRecord

EVAL_CURVES = {MEAN_TOP1: "zero-shot mean top-1", RECALL[0]: "image->text R@1", RECALL[1]: "text->image R@1",
               RETAINED_TOP1: "retained top-1", FORGETTING: "forgetting"}


Curves = dict[str, tuple[Sequence[float], Sequence[float]]]


def _draw(axes: Axes, curves: Curves, events: Sequence[float]) -> None:
    """`events`: samples at which the model grew, drawn as dashed lines."""
    for label, (xs, ys) in curves.items():
        axes.plot(xs, ys, label=label, marker="o" if len(xs) < 20 else None)
    for index, samples in enumerate(events):
        axes.axvline(samples, color="gray", linestyle="--", linewidth=1, label="growth" if index == 0 else None)
    axes.grid(alpha=0.3)


def _save(figure: Figure, path: Path) -> Path:
    """Figures are built without pyplot, so no backend or global figure state is touched."""
    figure.tight_layout()
    figure.savefig(path)
    return path


def _plot(path: Path, title: str, ylabel: str, curves: Curves, log_y: bool = False,
          events: Sequence[float] = ()) -> Path:
    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.subplots()
    _draw(axes, curves, events)
    axes.set(title=title, xlabel="samples seen", ylabel=ylabel)
    if log_y:
        axes.set_yscale("log")
    if len(curves) > 1 or events:
        axes.legend()
    return _save(figure, path)


def _stream_plot(path: Path, panels: list[tuple[str, Curves]], events: Sequence[float]) -> Path:
    """A growing run at a glance: one panel per (ylabel, curves), sharing the samples axis and the growth events."""
    figure = Figure(figsize=(7, 2.6 * len(panels)), dpi=100)
    grid = figure.subplots(len(panels), 1, sharex=True, squeeze=False)
    axes = grid[:, 0]
    for ax, (ylabel, curves) in zip(axes, panels):
        _draw(ax, curves, events)
        ax.set(ylabel=ylabel)
        ax.legend(fontsize=8)
    axes[0].set_title("growing run: loss, accuracy and model size against samples seen")
    axes[-1].set_xlabel("samples seen")
    return _save(figure, path)


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(r["samples"], r[key]) for r in records if key in r]
    return [x for x, _ in points], [y for _, y in points]


def _chunk_series(chunks: list[ChunkRecord], value: Callable[[ChunkRecord], float | None]
                  ) -> tuple[list[float], list[float]]:
    points = [(r.samples, v) for r in chunks if (v := value(r)) is not None]
    return [x for x, _ in points], [y for _, y in points]


def _summary(run: Path, records: list[dict], train: list[dict], evals: list[dict], plots: list[Path]) -> str:
    lines = [f"# growclip run `{run}`", ""]
    if train:
        last = train[-1]
        lines += [f"- steps: {last['step']}, samples seen: {last['samples']}, epochs started: {last['epoch'] + 1}",
                  f"- last logged loss: {last['loss']:.4f}, learning rate {last['lr']:.3g}, "
                  f"{last['samples_per_s']:.0f} samples/s"]
    skips = next((r["skipped_by_reason"] for r in reversed(records) if "skipped_by_reason" in r), None)
    if skips is not None:
        lines.append(f"- data: {format_skipped(skips)}")
    if evals:
        measured = [key for key in EVAL_CURVES if any(key in r for r in evals)]
        lines += ["", "## Evaluations", "", "| step | samples | " + " | ".join(EVAL_CURVES[k] for k in measured)
                  + " |", "|---:|---:|" + "---:|" * len(measured)]
        for r in evals:
            cells = [f"{r[k]:.3f}" if k in r else "-" for k in measured]
            lines.append(f"| {r['step']} | {r['samples']} | " + " | ".join(cells) + " |")
    chunks = _chunks(records)
    if chunks:
        retained = any(RETAINED_TOP1 in r.summary for r in chunks)
        lines += ["", "## Stream", "", "| chunk | data | decision | params | GFLOP/pair | zero-shot top-1 | "
                  "R@1 I->T / T->I | held-out loss new / old | search overhead | TFLOP so far |"
                  + (" retained top-1 (forgetting) |" if retained else ""),
                  "|---|---|---|---:|---:|---:|---|---|---:|---:|" + ("---:|" if retained else "")]
        lines += [_chunk_row(r) + (_retained_cell(r) if retained else "") for r in chunks]
        why = [f"- chunk {r['chunk']}: {r['decision']} ({r['why']})"
               + (f"; not tried within the search budget: {', '.join(r['left_out'])}" if r.get("left_out") else "")
               for r in records if "why" in r]
        lines += ["", "Decisions:", "", *why]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    config = run / "train_config.json"
    if config.is_file():
        lines += ["", "## Settings", "", "```json", json.dumps(json.loads(config.read_text()), indent=2), "```"]
    return "\n".join(lines) + "\n"


def _chunks(records: list[dict[str, Any]]) -> list[ChunkRecord]:
    return [ChunkRecord.from_dict(r) for r in records if "heldout_new_loss" in r]


def _chunk_row(r: ChunkRecord) -> str:
    zeroshot = "-" if r.mean_top1 is None else f"{r.mean_top1:.3f}"
    recall = "-" if r.recall is None else "{:.3f} / {:.3f}".format(*r.recall)
    old = "-" if r.heldout_old_loss is None else f"{r.heldout_old_loss:.3f}"
    return (f"| {r.chunk} | {r.name} | {r.decision} | {r.params / 1e6:.2f} M | {r.gflops_per_pair:.3f} | "
            f"{zeroshot} | {recall} | {r.heldout_new_loss:.3f} / {old} | {r.search_fraction:.0%} | "
            f"{r.total_tflop:.1f} |")


def _retained_cell(r: ChunkRecord) -> str:
    if RETAINED_TOP1 not in r.summary:
        return " - |"
    forgetting = f" ({r.summary[FORGETTING]:+.3f})" if FORGETTING in r.summary else ""
    return f" {r.summary[RETAINED_TOP1]:.3f}{forgetting} |"


def write_report(run: str | Path, output: str | Path | None = None) -> list[Path]:
    """-> the files written (PNG plots, then report.md), into `output` (default RUN/report)."""
    run = Path(run)
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run}: no metrics.jsonl here; is it a growclip run folder?")
    records = read_metrics(metrics)
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if any(k in r for k in EVAL_CURVES)]
    if not train and not evals:
        raise ValueError(f"{metrics}: no training or evaluation records yet")
    folder = Path(output) if output else run / "report"
    folder.mkdir(parents=True, exist_ok=True)
    plots = []
    events = [r["samples"] for r in records if "why" in r and r["decision"] != "keep"]
    if train:
        plots.append(_plot(folder / "loss.png", "training loss", "contrastive loss",
                           {"loss": _series(train, "loss")}, log_y=True, events=events))
        plots.append(_plot(folder / "lr.png", "learning rate", "lr", {"lr": _series(train, "lr")}))
    if evals:
        curves = {label: _series(evals, key) for key, label in EVAL_CURVES.items() if any(key in r for r in evals)}
        plots.append(_plot(folder / "eval.png", "evaluation", "accuracy / recall", curves, events=events))
    chunks = _chunks(records)
    if chunks:
        size = {"parameters (M)": _chunk_series(chunks, lambda r: r.params / 1e6),
                "GFLOP per pair": _chunk_series(chunks, lambda r: r.gflops_per_pair)}
        plots.append(_plot(folder / "size.png", "model size", "parameters (M) / GFLOP per pair", size, events=events))
        accuracy = {label: _chunk_series(chunks, lambda r, key=key: r.summary.get(key))
                    for key, label in EVAL_CURVES.items() if any(key in r.summary for r in chunks)}
        panels = [("training loss", {"loss": _series(train, "loss")}), ("accuracy / recall", accuracy),
                  ("size", size)]
        plots.insert(0, _stream_plot(folder / "stream.png", [p for p in panels if p[1]], events))
    summary = folder / "report.md"
    summary.write_text(_summary(run, records, train, evals, plots), encoding="utf-8")
    return [*plots, summary]
