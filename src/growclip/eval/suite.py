"""Run a set of zero-shot tasks and retrieval sets on a model, and summarise them."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean
from typing import Any

from growclip.data.evalsets import RetrievalSet, ZeroShotTask
from growclip.data.tokenizer import Tokenizer
from growclip.eval.retrieval import evaluate_retrieval
from growclip.eval.zeroshot import evaluate_zeroshot
from growclip.model.clip import CLIP


def evaluate(model: CLIP, tokenizer: Tokenizer, tasks: Sequence[ZeroShotTask] = (),
             retrievals: Sequence[RetrievalSet] = (), precision: str = "fp32") -> dict[str, Any]:
    """{"zeroshot": {task: metrics}, "retrieval": {set: metrics}, "summary": {...}}; model mode restored."""
    was_training = model.training
    model.eval()
    try:
        zeroshot = {task.name: evaluate_zeroshot(model, tokenizer, task, precision) for task in tasks}
        retrieval = {r.name: evaluate_retrieval(model, tokenizer, r, precision) for r in retrievals}
    finally:
        model.train(was_training)
    summary = {}
    if zeroshot:
        summary["zeroshot_mean_top1"] = mean(m["top1"] for m in zeroshot.values())
    if retrieval:
        summary["image_to_text_R@1"] = mean(m["image_to_text_R@1"] for m in retrieval.values())
        summary["text_to_image_R@1"] = mean(m["text_to_image_R@1"] for m in retrieval.values())
    return {"zeroshot": zeroshot, "retrieval": retrieval, "summary": summary}


def format_results(results: dict[str, Any]) -> str:
    """A plain-text table of what `evaluate` returned."""
    lines = []
    if results["zeroshot"]:
        lines.append(f"{'zero-shot task':<16}{'classes':>8}{'top1':>8}{'top5':>8}{'mean-rec':>10}")
        for name, m in results["zeroshot"].items():
            top5 = f"{m['top5']:8.3f}" if "top5" in m else f"{'-':>8}"
            classes = m.get("classes", "")
            lines.append(f"{name:<16}{classes:>8}{m['top1']:8.3f}{top5}{m['mean_per_class_recall']:10.3f}")
    for name, m in results["retrieval"].items():
        lines.append(f"retrieval {name}: image->text R@1/5/10 "
                     f"{m['image_to_text_R@1']:.3f}/{m['image_to_text_R@5']:.3f}/{m['image_to_text_R@10']:.3f}"
                     f"  text->image R@1/5/10 "
                     f"{m['text_to_image_R@1']:.3f}/{m['text_to_image_R@5']:.3f}/{m['text_to_image_R@10']:.3f}")
    summary = results["summary"]
    if "zeroshot_mean_top1" in summary:
        lines.append(f"mean zero-shot top1: {summary['zeroshot_mean_top1']:.3f}")
    return "\n".join(lines)
