"""Webdataset tar shards (`jpg`/`jpeg`/`png`/`webp` + `txt` per key), read with the `webdataset` package."""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import logging
import lzma
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import webdataset as wds
from webdataset.shardlists import expand_urls

from growclip.data.pairs import DataError, ImageTransform, Pair, RecordRng, Skip, clean_caption, decode_image

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
logger = logging.getLogger(__name__)


def sample_key(sample: dict[str, Any]) -> str:
    """Names a shard sample across shards: `url#key`."""
    return f"{sample['__url__']}#{sample['__key__']}"


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


DECOMPRESSORS = {".gz": gzip.open, ".tgz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _signature(path: str) -> tuple[str, int, int]:
    """A local shard as it is now: the per-shard checks below are cached on it, so that a shard read
    every epoch is scanned once, and again only if it changes."""
    stat = os.stat(path)
    return path, stat.st_size, stat.st_mtime_ns


@functools.cache
def _cut_off(signature: tuple[str, int, int]) -> bool:
    """A whole tar ends with two zero blocks (1024 bytes); one cut short ends inside a member. A
    compressed shard (`.tar.gz`, `.tgz`, `.tar.bz2`, `.tar.xz`) is cut short when its stream is: read
    through, it ends before its end-of-stream marker."""
    path = signature[0]
    decompress = DECOMPRESSORS.get(Path(path).suffix.lower())
    if decompress is not None:
        try:
            with decompress(path, "rb") as stream:
                while stream.read(1 << 20):
                    pass
        except (EOFError, OSError, lzma.LZMAError):
            return True
        return False
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(size - 1024, 0))
        return size < 1024 or handle.read() != bytes(1024)


@functools.cache
def _images_in(signature: tuple[str, int, int]) -> int:
    """Samples with an image in one shard, from its tar headers, counted as far as they are readable."""
    keys = set()
    try:
        with tarfile.open(signature[0]) as tar:
            for member in tar:
                stem, _, suffix = Path(member.name).name.partition(".")
                if member.isfile() and suffix.lower() in IMAGE_KEYS:
                    keys.add(str(Path(member.name).parent / stem))
    except (tarfile.TarError, OSError, EOFError):  # EOFError: a compressed shard cut short
        pass  # training counts the rest as unreadable
    return len(keys)


class ShardSource:
    """A brace-expanded list of shards, e.g. `data/shard-{000..099}.tar`; local shards must exist."""

    def __init__(self, spec: str) -> None:
        self.urls = expand_urls(spec)
        self.name = spec
        missing = [url for url in self.urls if _is_local(url) and not Path(url).is_file()]
        if missing:
            raise DataError(f"{len(missing)} of {len(self.urls)} shards of {spec!r} not found: "
                            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")

    def records(self, url: str) -> Iterator[dict[str, Any] | Skip]:
        """Raw samples of one shard, in order. A corrupt shard costs its unreadable part and nothing
        else: every sample whose tar header names an image but that could not be read comes out as
        a Skip. A shard cut short (no end-of-archive blocks) also yields one "cut-off shard" Skip and
        a warning: how many samples lay beyond the cut, no reader can know."""
        images = 0
        for sample in wds.tarfile_samples([{"url": url}], handler=lambda error: False):
            images += any(key in sample for key in IMAGE_KEYS)
            yield sample
        if _is_local(url):
            yield from (Skip("corrupt shard") for _ in range(max((self.count_urls([url]) or 0) - images, 0)))
            if _cut_off(_signature(url)):
                logger.warning("%s: cut off after %d samples (no end-of-archive marker); what followed is lost",
                               url, images)
                yield Skip("cut-off shard")

    def load(self, sample: dict[str, Any], transform: ImageTransform, rng: RecordRng) -> Pair | Skip:
        image_key = next((key for key in IMAGE_KEYS if key in sample), None)
        if image_key is None:
            return Skip("missing image")
        caption = clean_caption(sample.get("txt"))
        if isinstance(caption, Skip):
            return caption
        image = decode_image(sample[image_key], transform, rng)
        return image if isinstance(image, Skip) else Pair(image, caption, sample_key(sample))

    def count(self) -> int | None:
        return self.count_urls(self.urls)

    @staticmethod
    def count_urls(urls: list[str]) -> int | None:
        """Samples with an image, from the tar headers alone; None if a shard is not a local file."""
        if not all(_is_local(url) for url in urls):
            return None
        total = 0
        for url in urls:
            with contextlib.suppress(OSError):  # gone since the run started: its samples count as unreadable
                total += _images_in(_signature(url))
        return total

    def captions(self, limit: int) -> list[str]:
        found = []
        for url in self.urls:
            for sample in self.records(url):
                caption = clean_caption(sample.get("txt")) if isinstance(sample, dict) else sample
                if isinstance(caption, str):
                    found.append(caption)
                    if len(found) == limit:
                        return found
        return found
