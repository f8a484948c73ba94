"""A held-out retrieval set from any source (`--val-data`): every record read once, centre-cropped."""

from __future__ import annotations

from collections import Counter

import numpy as np

from growclip.data.evalsets import RetrievalSet
from growclip.data.pairs import DataError, Skip, format_skipped
from growclip.data.sources import PairSources
from growclip.data.transforms import CenterCrop


def read_retrieval_set(sources: PairSources, image_size: int, name: str = "val") -> tuple[RetrievalSet, Counter]:
    """-> (set, skip counts). Records naming the same image (rows repeating a path) become one image
    with several captions; a record that cannot be read is dropped with its caption, so
    captions and images stay aligned."""
    transform, rng = CenterCrop(image_size), np.random.default_rng(0)
    images: list[np.ndarray] = []
    texts: list[str] = []
    text_to_image: list[int] = []
    image_of_key: dict[str, int] = {}
    skipped = sources.skipped_on_open
    for part, record in sources.all_records():
        item = sources.load(part, record, transform, lambda: rng)
        if isinstance(item, Skip):
            skipped[item.reason] += 1
            continue
        if item.key not in image_of_key:
            image_of_key[item.key] = len(images)
            images.append(item.image)
        texts.append(item.caption)
        text_to_image.append(image_of_key[item.key])
    if not images:
        raise DataError(f"no readable pairs in the validation data {', '.join(sources.names)} "
                        f"({format_skipped(skipped)})")
    return RetrievalSet(name, np.stack(images), texts, text_to_image), skipped
