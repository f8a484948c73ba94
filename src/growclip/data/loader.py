"""Batching: images stacked and normalised, captions tokenised, in the loader's workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from growclip.data.tokenizer import Tokenizer
from growclip.data.transforms import normalize


def stack_images(images: list[np.ndarray]) -> torch.Tensor:
    """List of (S, S, 3) uint8 -> (B, 3, S, S) normalised float."""
    return normalize(torch.from_numpy(np.stack(images)))


class PairCollate:
    """Items whose first two fields are (image, caption) -> ((B, 3, S, S) float, (B, L) token ids)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: Sequence[Sequence[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        return stack_images([item[0] for item in batch]), self.tokenizer([item[1] for item in batch])
