"""One image-text record: read into a `Pair`, or a `Skip` whose reason is counted, never a crash."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

# Every reason a record can be skipped for; summaries list them in this order.
SKIP_REASONS = (
    "missing file", "empty file", "unreadable image", "unsupported image mode", "unsupported image format",
    "missing image", "missing caption",
    "empty caption", "non-UTF-8 caption", "missing column", "malformed row", "corrupt shard", "cut-off shard",
)

ImageTransform = Callable[[Image.Image, np.random.Generator], np.ndarray]  # -> (S, S, 3) uint8
# A record's augmentation generator, made only when an image is decoded: seeding one costs as much
# as serving a cached corpus pair, which is never transformed.
RecordRng = Callable[[], np.random.Generator]


class DataError(ValueError):
    """Data that cannot be used at all (wrong column, no readable pairs): a clear error at start-up."""


@dataclass(frozen=True)
class Skip:
    reason: str


class Pair(NamedTuple):
    image: np.ndarray  # (S, S, 3) uint8
    caption: str
    key: str  # names the image, so evaluation can group the captions of one image


# modes that convert to 8-bit RGB as they are meant; 16-bit and float images ("I;16", "I", "F")
# would be clipped to 255 by the conversion, so they are skipped rather than silently altered
RGB_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def _decode(source: str | Path | io.BytesIO, transform: ImageTransform, rng: RecordRng) -> np.ndarray | Skip:
    try:
        with Image.open(source) as image:
            if image.mode not in RGB_MODES:
                return Skip("unsupported image mode")
            return transform(image, rng())  # converting forces a full decode, so truncation shows here
    except Exception:  # decoders of untrusted bytes raise OSError, SyntaxError, ValueError, zlib errors...
        return Skip("unreadable image")


def read_image(path: Path, transform: ImageTransform, rng: RecordRng) -> np.ndarray | Skip:
    try:
        size = path.stat().st_size
    except OSError:
        return Skip("missing file")
    return Skip("empty file") if size == 0 else _decode(path, transform, rng)


def decode_image(data: bytes, transform: ImageTransform, rng: RecordRng) -> np.ndarray | Skip:
    return Skip("empty file") if not data else _decode(io.BytesIO(data), transform, rng)


def clean_caption(text: str | bytes | None) -> str | Skip:
    """Bytes must be UTF-8; text read with errors='surrogateescape' carries bad bytes as surrogates."""
    if text is None:
        return Skip("missing caption")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return Skip("non-UTF-8 caption")
    if any("\udc80" <= char <= "\udcff" for char in text):
        return Skip("non-UTF-8 caption")
    text = " ".join(text.removeprefix("\ufeff").split())  # a byte-order mark (Windows editors) is no word
    return text if text else Skip("empty caption")


def format_skipped(skipped: Mapping[str, int]) -> str:
    """'skipped 3 records: 2 missing file, 1 empty caption' (or 'skipped no records')."""
    total = sum(skipped.values())
    if not total:
        return "skipped no records"
    order = {reason: i for i, reason in enumerate(SKIP_REASONS)}
    parts = [f"{count} {reason}" for reason, count in sorted(skipped.items(), key=lambda kv: order.get(kv[0], 99))
             if count]
    return f"skipped {total} record{'s' if total != 1 else ''}: {', '.join(parts)}"


def add_counts(total: Counter, more: Mapping[str, int]) -> None:
    total.update({reason: count for reason, count in more.items() if count})
