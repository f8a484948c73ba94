"""Batching: images stacked and normalised, captions tokenised, in the loader's workers."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from growclip.data.tokenizer import Tokenizer
from growclip.data.transforms import normalize


def stack_images(images: list[np.ndarray]) -> torch.Tensor:
    """List of (S, S, 3) uint8 -> (B, 3, S, S) normalised float."""
    return normalize(torch.from_numpy(np.stack(images)))


class PairCollate:
    """(image, caption) items -> ((B, 3, S, S) float images, (B, L) token ids)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: list[tuple[np.ndarray, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        images, captions = zip(*batch)
        return stack_images(list(images)), self.tokenizer(captions)


def pair_loader(dataset: Dataset, tokenizer: Tokenizer, batch_size: int, seed: int, workers: int = 0,
                shuffle: bool = True) -> DataLoader:
    """Seeded shuffling; full batches only, as a contrastive batch's size sets its negatives."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=True, num_workers=workers,
        collate_fn=PairCollate(tokenizer), generator=torch.Generator().manual_seed(seed),
        persistent_workers=workers > 0,
    )
