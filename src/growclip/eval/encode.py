"""Batched, no-grad embedding of image datasets and text lists for evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from growclip.data.loader import stack_images
from growclip.data.tokenizer import Tokenizer
from growclip.model.clip import CLIP
from growclip.runtime import autocast


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Items are images, (image, label) pairs, or None for an unreadable image (dropped here).
    Labels come back as a tensor (-1 if the items carry none)."""
    batch = [item for item in batch if item is not None]
    if not batch:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    if isinstance(batch[0], tuple):
        images, labels = zip(*batch)
        return stack_images(list(images)), torch.as_tensor(labels)
    return stack_images(batch), torch.full((len(batch),), -1)


@torch.no_grad()
def encode_images(model: CLIP, images: Dataset | np.ndarray, batch_size: int = 256, precision: str = "fp32"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (N, E) float32 normalised features and (N,) labels (-1 where the items carry none).
    N is below len(images) by the number of unreadable images."""
    device = next(model.parameters()).device
    features, labels = [], []
    for pixels, label in DataLoader(images, batch_size=batch_size, collate_fn=_collate):
        if not len(label):
            continue
        with autocast(device, precision):
            features.append(model.encode_image(pixels.to(device)).float().cpu())
        labels.append(label)
    if not features:  # every image was unreadable
        return torch.empty(0, model.config.embed_dim), torch.empty(0, dtype=torch.long)
    return torch.cat(features), torch.cat(labels)


@torch.no_grad()
def encode_texts(model: CLIP, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 512,
                 precision: str = "fp32") -> torch.Tensor:
    """-> (T, E) float32 normalised features."""
    device = next(model.parameters()).device
    features = []
    for start in range(0, len(texts), batch_size):
        with autocast(device, precision):
            tokens = tokenizer(texts[start : start + batch_size]).to(device)
            features.append(model.encode_text(tokens).float().cpu())
    return torch.cat(features)
