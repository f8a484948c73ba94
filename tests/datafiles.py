"""Small image-caption datasets written by tests: tables, sidecar folders, webdataset shards, and
every kind of bad record. Each good image is one flat colour, so a batch tells which images it holds."""

from __future__ import annotations

import csv
import io
import zlib
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

# How many records of each bad kind `write_bad_table` adds, by the reason growclip counts.
BAD_TABLE_ROWS = {"unreadable image": 2, "missing file": 1, "empty file": 1, "empty caption": 2,
                  "non-UTF-8 caption": 1, "missing column": 1, "malformed row": 1}


def colour(index: int) -> tuple[int, int, int]:
    return (index * 37) % 256, (index * 91) % 256, (index * 53 + 40) % 256


def png_bytes(index: int, size: int = 20) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size + index % 3, size), colour(index)).save(buffer, format="png")
    return buffer.getvalue()


def write_images(folder: Path, count: int, start: int = 0, sidecars: bool = False) -> list[tuple[str, str]]:
    """-> (file name, caption) of `count` images in `folder`, with `.txt` captions if asked."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(start, start + count):
        name, caption = f"img{index:04d}.png", f"a flat colour number {index}"
        (folder / name).write_bytes(png_bytes(index))
        if sidecars:
            (folder / name).with_suffix(".txt").write_text(caption)
        rows.append((name, caption))
    return rows


def write_table(path: Path, rows: list[tuple[str, str]], separator: str = "\t",
                header: tuple[str, str] = ("filepath", "title")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=separator)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def noisy_png(size: int = 48) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png")
    return buffer.getvalue()


def write_bad_table(path: Path, good: int) -> Path:
    """A TSV with `good` readable pairs and the bad records of BAD_TABLE_ROWS, interleaved."""
    folder = path.parent / "images"
    rows = write_images(folder, good)
    (folder / "garbage.png").write_bytes(b"not an image at all")
    (folder / "truncated.png").write_bytes(noisy_png()[:2000])
    (folder / "zero.png").write_bytes(b"")
    good_lines = [f"images/{name}\t{caption}".encode() for name, caption in rows]
    bad_lines = [b"images/garbage.png\tunreadable", b"images/truncated.png\ttruncated",
                 b"images/nowhere.png\tmissing", b"images/zero.png\tzero bytes", f"images/{rows[0][0]}\t".encode(),
                 f"images/{rows[1][0]}\t   ".encode(), f"images/{rows[2][0]}\tcaf\xe9".encode("latin-1"),
                 b"images/short_row.png", b"images/extra.png\ta caption\tand an extra cell"]
    mixed = sorted(good_lines + bad_lines, key=lambda line: zlib.crc32(line))  # a fixed interleaving
    path.write_bytes(b"filepath\ttitle\n" + b"\n".join(mixed) + b"\n")
    return path


def write_shards(folder: Path, count: int, per_shard: int, start: int = 0) -> str:
    """Shards of `per_shard` good samples -> the brace pattern naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(folder / "shard-%03d.tar"), maxcount=per_shard, verbose=0) as sink:
        for index in range(start, start + count):
            sink.write({"__key__": f"s{index:05d}", "png": png_bytes(index), "txt": f"a flat colour number {index}"})
        last = sink.shard - 1
    return str(folder / f"shard-{{000..{last:03d}}}.tar")
