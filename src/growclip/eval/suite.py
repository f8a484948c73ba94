"""Run a set of zero-shot tasks and retrieval sets on a model, and summarise them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import mean
from typing import Any

from growclip.data.evalsets import RetrievalSet, ZeroShotTask
from growclip.data.tokenizer import Tokenizer
from growclip.eval.heldout import heldout_loss
from growclip.eval.retrieval import evaluate_retrieval
from growclip.eval.sets import EvalSets
from growclip.eval.zeroshot import evaluate_zeroshot
from growclip.model.clip import CLIP

# The summary's metric names, defined once: the run's logs, chunk records and reports use these keys.
MEAN_TOP1 = "zeroshot_mean_top1"  # mean zero-shot top-1 over the tasks
RECALL = ("image_to_text_R@1", "text_to_image_R@1")  # mean over the retrieval sets
GALLERY_RECALL = tuple(f"gallery_{name}" for name in RECALL)  # on the large gallery
HELDOUT_LOSS = "heldout_loss"  # mean contrastive loss on the held-out sets
RETAINED_TOP1 = "retained_mean_top1"  # mean zero-shot top-1 on what the starting model knew (--forgetting-data)
FORGETTING = "forgetting"  # that top-1 when the run started minus now: positive is lost, negative gained
SUMMARY_METRICS = (MEAN_TOP1, *RECALL, *GALLERY_RECALL, HELDOUT_LOSS, RETAINED_TOP1, FORGETTING)


@dataclass(frozen=True)
class EvalResults:
    """What `evaluate` measured, per set (metric name -> value), and the summary over the sets:
    the `SUMMARY_METRICS` the sets allow. `to_dict` is the JSON a run and `growclip eval` write."""

    zeroshot: dict[str, dict[str, float]]  # task -> top1, top5, mean_per_class_recall, classes, images
    retrieval: dict[str, dict[str, float]]  # set -> R@1/5/10 both ways
    gallery: dict[str, dict[str, float]]  # the large gallery, likewise
    heldout: dict[str, float]  # set -> contrastive loss
    summary: dict[str, float]
    retained: dict[str, dict[str, float]] = field(default_factory=dict)  # the starting model's tasks, as zeroshot

    @property
    def measured(self) -> bool:
        """Whether there was anything to score zero-shot or by retrieval."""
        return bool(self.zeroshot or self.retrieval)

    def top1(self) -> dict[str, float]:
        """Zero-shot top-1 per task."""
        return {task: m["top1"] for task, m in self.zeroshot.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(model: CLIP, tokenizer: Tokenizer, tasks: Sequence[ZeroShotTask] = (),
             retrievals: Sequence[RetrievalSet] = (), precision: str = "fp32", gallery: RetrievalSet | None = None,
             heldouts: Sequence[RetrievalSet] = (), retained: Sequence[ZeroShotTask] = (),
             retained_start: Mapping[str, float] | None = None) -> EvalResults:
    """Every task and set scored; model mode restored. `gallery`: a large retrieval set whose R@1 is
    summarised apart; `heldouts`: one caption per image, scored by contrastive loss; `retained`: tasks
    the starting model knew, kept out of the new data's mean, with `retained_start` its top-1 on each
    (what forgetting is counted from)."""
    was_training = model.training
    model.eval()
    try:
        zeroshot = {task.name: evaluate_zeroshot(model, tokenizer, task, precision) for task in tasks}
        retrieval = {r.name: evaluate_retrieval(model, tokenizer, r, precision) for r in retrievals}
        large = {gallery.name: evaluate_retrieval(model, tokenizer, gallery, precision)} if gallery else {}
        heldout = {h.name: heldout_loss(model, tokenizer, h, precision) for h in heldouts}
        kept = {task.name: evaluate_zeroshot(model, tokenizer, task, precision) for task in retained}
    finally:
        model.train(was_training)
    summary = _summary(zeroshot, retrieval, large, heldout) | _retained_summary(kept, retained_start)
    return EvalResults(zeroshot, retrieval, large, heldout, summary, kept)


def evaluate_sets(model: CLIP, tokenizer: Tokenizer, sets: EvalSets, precision: str = "fp32") -> EvalResults:
    """`evaluate` on everything `sets` holds."""
    return evaluate(model, tokenizer, sets.tasks, sets.retrievals, precision, sets.gallery, sets.heldouts,
                    sets.retained, sets.retained_start)


def _retained_summary(kept: dict, start: Mapping[str, float] | None) -> dict[str, float]:
    if not kept:
        return {}
    summary = {RETAINED_TOP1: mean(m["top1"] for m in kept.values())}
    if start and set(start) == set(kept):
        summary[FORGETTING] = mean(start.values()) - summary[RETAINED_TOP1]
    return summary


def _summary(zeroshot: dict, retrieval: dict, gallery: dict, heldout: dict) -> dict[str, float]:
    summary = {}
    if zeroshot:
        summary[MEAN_TOP1] = mean(m["top1"] for m in zeroshot.values())
    for names, sets in ((RECALL, retrieval), (GALLERY_RECALL, gallery)):
        for name, key in zip(names, RECALL) if sets else ():
            summary[name] = mean(m[key] for m in sets.values())
    if heldout:
        summary[HELDOUT_LOSS] = mean(heldout.values())
    return summary


def _recall_line(name: str, m: dict[str, float]) -> str:
    return (f"retrieval {name}: image->text R@1/5/10 "
            f"{m['image_to_text_R@1']:.3f}/{m['image_to_text_R@5']:.3f}/{m['image_to_text_R@10']:.3f}"
            f"  text->image R@1/5/10 "
            f"{m['text_to_image_R@1']:.3f}/{m['text_to_image_R@5']:.3f}/{m['text_to_image_R@10']:.3f}")


def format_results(results: EvalResults) -> str:
    """A plain-text table of what `evaluate` returned."""
    lines = []
    if results.zeroshot:
        lines.append(f"{'zero-shot task':<16}{'classes':>8}{'top1':>8}{'top5':>8}{'mean-rec':>10}")
        for name, m in results.zeroshot.items():
            top5 = f"{m['top5']:8.3f}" if "top5" in m else f"{'-':>8}"
            classes = m.get("classes", "")
            lines.append(f"{name:<16}{classes:>8}{m['top1']:8.3f}{top5}{m['mean_per_class_recall']:10.3f}")
    lines += [_recall_line(name, m) for name, m in {**results.retrieval, **results.gallery}.items()]
    if results.heldout:
        lines.append("held-out loss " + " ".join(f"{name} {loss:.3f}" for name, loss in results.heldout.items())
                     + f", mean {results.summary[HELDOUT_LOSS]:.3f}")
    summary = results.summary
    if MEAN_TOP1 in summary:
        lines.append(f"mean zero-shot top1: {summary[MEAN_TOP1]:.3f}")
    lines += [f"retained task {name}: top1 {m['top1']:.3f} ({m['classes']} classes)"
              for name, m in results.retained.items()]
    if FORGETTING in summary:
        now, lost = summary[RETAINED_TOP1], summary[FORGETTING]
        lines.append(f"forgetting {lost:+.3f}: retained top1 {now + lost:.3f} at the start, {now:.3f} now")
    return "\n".join(lines)
