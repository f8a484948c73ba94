"""A folder of images, each with its caption in a sidecar `.txt` of the same name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from growclip.data.pairs import DataError, ImageTransform, Pair, Skip, clean_caption, read_image
from growclip.data.sources.base import IMAGE_SUFFIXES, IndexedSource


def _read_caption(image_path: Path) -> str | Skip:
    try:
        return clean_caption(image_path.with_suffix(".txt").read_bytes())
    except OSError:
        return Skip("missing caption")


class FolderSource(IndexedSource):
    """Images found recursively; captions are read with the image, so opening a large folder is quick."""

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.name = self.root.name
        self.images = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise DataError(f"{self.root}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int, transform: ImageTransform, rng: np.random.Generator) -> Pair | Skip:
        path = self.images[index]
        caption = _read_caption(path)
        if isinstance(caption, Skip):
            return caption
        image = read_image(path, transform, rng)
        return image if isinstance(image, Skip) else Pair(image, caption, str(path))

    def captions(self, limit: int) -> list[str]:
        found = []
        for path in self.images:
            caption = _read_caption(path)
            if isinstance(caption, str):
                found.append(caption)
                if len(found) == limit:
                    break
        return found
