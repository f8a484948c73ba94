"""Zero-shot classification: class embeddings from averaged prompt templates."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from growclip.data.evalsets import ZeroShotTask
from growclip.data.tokenizer import Tokenizer
from growclip.eval.encode import encode_images, encode_texts
from growclip.eval.metrics import mean_per_class_recall, topk_accuracy
from growclip.model.clip import CLIP


def class_embeddings(model: CLIP, tokenizer: Tokenizer, classnames: Sequence[str], templates: Sequence[str],
                     precision: str = "fp32") -> torch.Tensor:
    """(C, E): each class's template embeddings averaged, then re-normalised."""
    prompts = [template.format(name) for name in classnames for template in templates]
    features = encode_texts(model, tokenizer, prompts, precision=precision)  # (C*T, E)
    return F.normalize(features.view(len(classnames), len(templates), -1).mean(dim=1), dim=-1)


def evaluate_zeroshot(model: CLIP, tokenizer: Tokenizer, task: ZeroShotTask, precision: str = "fp32"
                      ) -> dict[str, float]:
    classifier = class_embeddings(model, tokenizer, task.classnames, task.templates, precision)
    image_features, labels = encode_images(model, task.dataset, precision=precision)
    if not len(labels):
        raise ValueError(f"zero-shot task {task.name!r}: none of its {len(task.dataset)} images could be read")
    logits = image_features @ classifier.t()  # (N, C)
    with torch.no_grad():  # as trained: cosine similarities times the learned temperature
        loss = F.cross_entropy(logits * model.scale().float().cpu(), labels).item()
    results = {"top1": topk_accuracy(logits, labels, 1),
               "mean_per_class_recall": mean_per_class_recall(logits, labels), "loss": loss}
    if len(task.classnames) >= 5:
        results["top5"] = topk_accuracy(logits, labels, 5)
    results["classes"] = len(task.classnames)
    results["images"] = len(labels)
    skipped = len(task.dataset) - len(labels)
    if skipped:
        results["skipped_unreadable"] = skipped
    return results
