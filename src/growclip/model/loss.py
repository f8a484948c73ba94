"""Symmetric InfoNCE, the CLIP objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy; pair i is the positive of row i.

    image_features, text_features: (B, E) normalised; computed in float32 whatever the autocast.
    """
    logits = logit_scale.float() * image_features.float() @ text_features.float().t()  # (B, B)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
