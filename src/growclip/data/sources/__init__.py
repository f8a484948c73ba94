"""Training data from any mix of sources: tables, image folders, webdataset shards, the corpus.

`open_sources("a.csv::shards/{000..009}.tar::photos/")` joins sources as open_clip's `::` does.
Each epoch the records are cut into *parts* (blocks of shuffled indices, or whole shards) that
the stream's lanes read in order, so any record's place in the run is a pure function of
(seed, epoch): that is what lets `--resume` continue bit for bit.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from growclip.data.pairs import DataError, ImageTransform, Pair, RecordRng, Skip, add_counts, format_skipped
from growclip.data.sources.base import IndexedSource
from growclip.data.sources.corpus import CorpusSource
from growclip.data.sources.folder import FolderSource
from growclip.data.sources.shards import ShardSource, sample_key
from growclip.data.sources.table import TableSource


@dataclass(frozen=True)
class ReaderOptions:
    """open_clip's table flags; a separator of None means: by suffix (`.csv` comma, else tab)."""

    csv_separator: str | None = None
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    csv_label_key: str = "label"  # labelled tables (zero-shot evaluation)


@dataclass(frozen=True)
class Part:
    """A unit a lane reads in one go: a block of global indices, or one shard of one shard source."""

    indices: np.ndarray | None = None
    shard_source: int = -1
    url: str = ""


def open_source(spec: str, options: ReaderOptions = ReaderOptions()) -> IndexedSource | ShardSource:
    """One source; its kind is told by what the path is."""
    path = Path(spec)
    if ".tar" in spec or "{" in spec:
        return ShardSource(spec)
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        return TableSource(path, options.csv_separator, options.csv_img_key, options.csv_caption_key)
    raise DataError(f"{spec}: not found (expected a .csv/.tsv table, a folder of images with .txt "
                    f"captions, or .tar shards)")


class PairSources:
    """Several sources read as one: indexed records pooled into one global index, plus shards.

    `excluded` records (global indices, or `url#key` of shard samples) never reach training: a
    held-out split, or the part of old data a replay leaves out. `shards` keeps only some shard URLs.
    """

    def __init__(self, sources: list[IndexedSource | ShardSource], excluded: frozenset[int | str] = frozenset(),
                 shards: frozenset[str] | None = None) -> None:
        self.sources, self.excluded, self.shards = sources, excluded, shards
        self.indexed = [s for s in sources if isinstance(s, IndexedSource)]
        self.sharded = [s for s in sources if isinstance(s, ShardSource)]
        self._offsets = np.cumsum([0] + [len(s) for s in self.indexed]).tolist()
        if not self.sharded and self._offsets[-1] == 0:
            raise DataError(f"no usable records in {', '.join(s.name for s in sources)} "
                            f"({format_skipped(self.skipped_on_open)})")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.indexed + self.sharded]

    @property
    def skipped_on_open(self) -> Counter:
        total: Counter = Counter()
        for source in self.indexed:
            add_counts(total, source.skipped)
        return total

    @property
    def indexed_count(self) -> int:
        """Records of the indexed sources (exclusions not subtracted): the global index space."""
        return self._offsets[-1]

    def _urls(self, source: ShardSource) -> list[str]:
        return [url for url in source.urls if self.shards is None or url in self.shards]

    def count(self) -> int | None:
        """Records in one epoch; None when a shard's size cannot be read without streaming it."""
        shard_counts = [ShardSource.count_urls(self._urls(s)) for s in self.sharded]
        if None in shard_counts:
            return None
        return self._offsets[-1] + sum(shard_counts) - len(self.excluded)

    def epoch_parts(self, seed: int, epoch: int, block: int) -> list[Part]:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(self._offsets[-1])
        if self.excluded:
            order = order[~np.isin(order, [i for i in self.excluded if isinstance(i, int)])]
        parts = [Part(indices=order[start : start + block]) for start in range(0, len(order), block)]
        parts += [Part(shard_source=i, url=url) for i, source in enumerate(self.sharded) for url in self._urls(source)]
        return [parts[i] for i in rng.permutation(len(parts))]

    def records(self, part: Part) -> Iterator[Any]:
        """A part's raw records: global indices, or a shard's samples in order (excluded ones left out)."""
        if part.indices is not None:
            return iter(part.indices.tolist())
        samples = self.sharded[part.shard_source].records(part.url)
        if not self.excluded:
            return samples
        return (s for s in samples if isinstance(s, Skip) or sample_key(s) not in self.excluded)

    def without(self, excluded: set[int | str]) -> PairSources:
        return PairSources(self.sources, self.excluded | frozenset(excluded), self.shards)

    def sample(self, fraction: float, seed: int) -> PairSources:
        """About `fraction` of the records, drawn with `seed`: indices one by one, shards whole."""
        if fraction >= 1:
            return self
        rng = np.random.default_rng(seed)
        dropped = np.flatnonzero(rng.random(self._offsets[-1]) >= fraction).tolist()
        urls = [url for source in self.sharded for url in self._urls(source)]
        kept = frozenset(url for url in urls if rng.random() < fraction)
        return PairSources(self.sources, self.excluded | frozenset(dropped), kept)

    def load(self, part: Part, record: Any, transform: ImageTransform, rng: RecordRng) -> Pair | Skip:
        if isinstance(record, Skip):
            return record
        if part.indices is None:
            return self.sharded[part.shard_source].load(record, transform, rng)
        which = bisect.bisect_right(self._offsets, record) - 1
        return self.indexed[which].load(record - self._offsets[which], transform, rng)

    def all_records(self) -> Iterator[tuple[Part, Any]]:
        """Every record once, in source order, exclusions respected (evaluation sets)."""
        for which, source in enumerate(self.indexed):
            part = Part(indices=np.arange(len(source)) + self._offsets[which])
            yield from ((part, index) for index in part.indices.tolist() if index not in self.excluded)
        for which, source in enumerate(self.sharded):
            for url in self._urls(source):
                part = Part(shard_source=which, url=url)
                yield from ((part, record) for record in self.records(part))

    def captions(self, limit: int = 200_000) -> list[str]:
        """Captions for training a tokenizer, taken evenly from every source."""
        sources = self.indexed + self.sharded
        return [c for source in sources for c in source.captions(limit // len(sources))]


def join_sources(parts: list[PairSources]) -> PairSources:
    """Several opened sets of sources as one (a cumulative stream); exclusions must be disjoint."""
    sources, excluded, shards, offset = [], set(), set(), 0
    for part in parts:
        sources += part.sources
        excluded |= {i + offset if isinstance(i, int) else i for i in part.excluded}
        shards |= set(part.shards) if part.shards is not None else {u for s in part.sharded for u in s.urls}
        offset += part.indexed_count
    return PairSources(sources, frozenset(excluded), frozenset(shards))


def open_sources(spec: str, options: ReaderOptions = ReaderOptions()) -> PairSources:
    specs = [part for part in spec.split("::") if part.strip()]
    if not specs:
        raise DataError("no data source given")
    return PairSources([open_source(part.strip(), options) for part in specs])


__all__ = [
    "CorpusSource",
    "FolderSource",
    "PairSources",
    "Part",
    "ReaderOptions",
    "ShardSource",
    "TableSource",
    "join_sources",
    "open_source",
    "open_sources",
    "sample_key",
]
