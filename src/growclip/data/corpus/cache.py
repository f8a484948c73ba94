"""Rendered corpus samples kept in memory, up to a byte budget.

A growing run trains on every pair many times (epochs, and every old chunk again with each new
one), and for the small models a growing run starts from, rendering a pair costs about as much as
training on it. Samples are pure functions of their index, so a cached one is the one rendering
would give again. With DataLoader workers each worker fills its own copy, lost when the epoch's
workers exit; the default in-process loader keeps it for the whole run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

DEFAULT_CACHE_MIB = 1536


class SampleCache:
    """The first `len(images)` samples of one dataset. Images share one preallocated array: kept as
    tens of thousands of small arrays between a training step's tensors, they fragmented the heap to
    ten times their size."""

    def __init__(self, count: int, image_shape: tuple[int, ...]) -> None:
        self.images = np.empty((count, *image_shape), dtype=np.uint8)  # pages are taken as they are filled
        self.rest: list[Any] = [None] * count

    def get(self, index: int, render: Callable[[], tuple[np.ndarray, Any]]) -> tuple[np.ndarray, Any]:
        """Sample `index` as (image, rest); the image is a read-only view, as callers share it."""
        if index >= len(self.rest):
            return render()
        if self.rest[index] is None:
            self.images[index], self.rest[index] = render()
        image = self.images[index]
        image.flags.writeable = False
        return image, self.rest[index]


class RenderCache:
    """Hands each dataset a SampleCache for as many of its samples as the budget has room for."""

    def __init__(self, budget_mib: float = DEFAULT_CACHE_MIB) -> None:
        if budget_mib < 0:
            raise ValueError(f"the render cache budget must be >= 0 MiB, got {budget_mib}")
        self.free_bytes = int(budget_mib * 2**20)

    def for_dataset(self, count: int, image_shape: tuple[int, ...]) -> SampleCache:
        image_bytes = int(np.prod(image_shape))
        affordable = min(count, self.free_bytes // image_bytes)
        self.free_bytes -= affordable * image_bytes
        return SampleCache(affordable, image_shape)
