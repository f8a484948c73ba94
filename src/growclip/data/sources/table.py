"""CSV/TSV tables of image path + caption, with open_clip's `--csv-*` conventions."""

from __future__ import annotations

import csv
from pathlib import Path

from growclip.data.pairs import DataError, ImageTransform, Pair, RecordRng, Skip, clean_caption, read_image
from growclip.data.sources.base import IndexedSource


def default_separator(path: Path) -> str:
    """Comma for `.csv`, tab otherwise (open_clip's default, and what `.tsv` means)."""
    return "," if path.suffix.lower() == ".csv" else "\t"


def quoting_for(separator: str) -> int:
    """CSV quotes fields ("a, b"); TSV has no quoting (IANA text/tab-separated-values), so a stray
    quote in a caption is a character, never the start of a field that swallows the rows after it."""
    return csv.QUOTE_NONE if separator == "\t" else csv.QUOTE_MINIMAL


class TableSource(IndexedSource):
    """Rows with a missing column, an empty or a non-UTF-8 caption are dropped (and counted) on opening;
    image paths are relative to the table's folder unless absolute."""

    def __init__(self, path: str | Path, separator: str | None = None, img_key: str = "filepath",
                 caption_key: str = "title") -> None:
        super().__init__()
        self.path = Path(path)
        self.name = self.path.name
        separator = separator or default_separator(self.path)
        self.paths: list[str] = []
        self.texts: list[str] = []
        with self.path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
            reader = csv.DictReader(handle, delimiter=separator, quoting=quoting_for(separator))
            self._check_columns(reader.fieldnames, separator, img_key, caption_key)
            line = reader.line_num
            while (row := self._next_row(reader)) is not None:
                if not row:  # the csv module does not count the line it failed on
                    self.skipped["malformed row"] += 1
                    line += 1
                    continue
                lines, line = reader.line_num - line, reader.line_num
                if lines > 1 or None in row:  # an unclosed quote swallowed the next lines, or extra cells
                    self.skipped["malformed row"] += lines
                    continue
                self._add_row(row.get(img_key), row.get(caption_key))

    @staticmethod
    def _next_row(reader: csv.DictReader) -> dict[str, str] | None:
        """The next row; {} for one the csv module cannot read (a field over its size limit, which a
        runaway quote makes); None at the end."""
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error:
            return {}

    def _check_columns(self, columns: list[str] | None, separator: str, img_key: str, caption_key: str) -> None:
        if not columns:
            raise DataError(f"{self.path}: empty table, expected a header row")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise DataError(f"{self.path}: the header names {repeated} more than once")
        for key, flag in ((img_key, "--csv-img-key"), (caption_key, "--csv-caption-key")):
            if key not in columns:
                raise DataError(f"{self.path}: no column {key!r} ({flag}); the columns are {columns} "
                                f"with separator {separator!r} (--csv-separator)")

    def _add_row(self, image_path: str | None, text: str | None) -> None:
        if image_path is None or text is None:  # a short row: DictReader fills the missing cells with None
            self.skipped["missing column"] += 1
            return
        caption = clean_caption(text)
        if isinstance(caption, Skip):
            self.skipped[caption.reason] += 1
        elif not image_path.strip():
            self.skipped["missing file"] += 1
        else:
            self.paths.append(image_path.strip())
            self.texts.append(caption)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int, transform: ImageTransform, rng: RecordRng) -> Pair | Skip:
        path = self.path.parent / self.paths[index]
        image = read_image(path, transform, rng)
        return image if isinstance(image, Skip) else Pair(image, self.texts[index], str(path))

    def captions(self, limit: int) -> list[str]:
        return self.texts[:limit]
