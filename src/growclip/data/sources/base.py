"""What every data source offers the training stream: records that load into a `Pair` or a `Skip`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter

from growclip.data.pairs import ImageTransform, Pair, RecordRng, Skip

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class IndexedSource(ABC):
    """Records addressable by index (a table of files, a folder, the corpus), shuffled globally."""

    name: str

    def __init__(self) -> None:
        self.skipped: Counter = Counter()  # records dropped when the source was opened

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int, transform: ImageTransform, rng: RecordRng) -> Pair | Skip: ...

    @abstractmethod
    def captions(self, limit: int) -> list[str]:
        """Up to `limit` captions, for training a tokenizer."""
