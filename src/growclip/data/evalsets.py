"""What evaluation runs on: zero-shot classification tasks and retrieval sets, from any source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset


@dataclass
class ZeroShotTask:
    """Labelled images plus the class names and prompt templates (`{}` marks the class name)."""

    name: str
    classnames: Sequence[str]
    templates: Sequence[str]
    dataset: Dataset  # items: ((S, S, 3) uint8 image, int label)


@dataclass
class RetrievalSet:
    """Images and captions; `text_to_image[j]` is the image caption j describes."""

    name: str
    images: Dataset | np.ndarray  # items: (S, S, 3) uint8
    texts: Sequence[str]
    text_to_image: Sequence[int]
