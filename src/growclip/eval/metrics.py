"""Classification and retrieval metrics on score matrices (pure tensor functions, easy to check by hand)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of rows whose true label is among the k highest logits. logits: (N, C), labels: (N,)."""
    topk = logits.topk(min(k, logits.shape[1]), dim=1).indices  # (N, k)
    return topk.eq(labels[:, None]).any(dim=1).float().mean().item()


def mean_per_class_recall(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 recall of each class present in `labels`, averaged over those classes."""
    predictions = logits.argmax(dim=1)
    recalls = [predictions[labels == c].eq(c).float().mean() for c in labels.unique()]
    return torch.stack(recalls).mean().item()


def retrieval_recall(similarity: torch.Tensor, text_to_image: Sequence[int], ks: Sequence[int] = (1, 5, 10)
                     ) -> dict[str, float]:
    """R@k both ways for (num_images, num_texts) similarities.

    Image-to-text counts a hit when any of the image's captions is in its top k (CLIP_benchmark).
    """
    num_images, num_texts = similarity.shape
    owner = torch.as_tensor(text_to_image)  # (T,)
    positive = owner[None, :].eq(torch.arange(num_images)[:, None])  # (I, T)
    results = {}
    for k in ks:
        top_texts = similarity.topk(min(k, num_texts), dim=1).indices  # (I, k)
        results[f"image_to_text_R@{k}"] = positive.gather(1, top_texts).any(dim=1).float().mean().item()
        top_images = similarity.t().topk(min(k, num_images), dim=1).indices  # (T, k)
        results[f"text_to_image_R@{k}"] = top_images.eq(owner[:, None]).any(dim=1).float().mean().item()
    return results
