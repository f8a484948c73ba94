"""A folder of images, each with its caption in a sidecar `.txt` of the same name."""

from __future__ import annotations

from pathlib import Path

from growclip.data.pairs import (
    DataError,
    ImageTransform,
    Pair,
    RecordRng,
    Skip,
    clean_caption,
    format_skipped,
    read_image,
)
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
        files = [p for p in self.root.rglob("*") if p.is_file()]
        self.images = sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)
        self._count_captions_left_out(files)
        if not self.images:
            raise DataError(f"{self.root}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder "
                            f"({format_skipped(self.skipped)})")

    def _count_captions_left_out(self, files: list[Path]) -> None:
        """A caption whose image is missing, or of a kind not read (`.heic`, say), is a pair left out:
        counted, never silently dropped. Other files (a `.json` beside each pair) are not pairs."""
        image_stems = {p.with_suffix("") for p in self.images}
        other_stems = {p.with_suffix("") for p in files if p.suffix.lower() not in (*IMAGE_SUFFIXES, ".txt")}
        for caption in (p.with_suffix("") for p in files if p.suffix.lower() == ".txt"):
            if caption not in image_stems:
                self.skipped["unsupported image format" if caption in other_stems else "missing image"] += 1

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int, transform: ImageTransform, rng: RecordRng) -> Pair | Skip:
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
