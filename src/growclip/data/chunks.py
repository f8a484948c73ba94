"""A stream of data chunks: an ordered list, or a folder in which new chunks appear as the run goes.

A chunk is any training source spec (`data/a.tsv`, `shards/{000..009}.tar`, `photos/`, several
joined by `::`) or `corpus:K`, stage K of the embedded corpus. Each chunk keeps a small held-out
split (never trained on) that growth decisions and forgetting are scored on.

A watched folder's chunks are its entries in the order they are taken (see `ChunkStream`): a
table file, an image folder, or a folder of `.tar` shards. Write a chunk under a hidden or `.tmp`
name and rename it when complete (or let it settle); a file named `END` says the stream has ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from growclip.data.corpus import NUM_STAGES, EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet
from growclip.data.pairs import DataError, Skip
from growclip.data.sources import CorpusSource, PairSources, ReaderOptions, join_sources, open_sources, sample_key
from growclip.data.transforms import CenterCrop
from growclip.runtime import derive_seed

CORPUS_PREFIX = "corpus:"
CORPUS_STREAM = tuple(f"{CORPUS_PREFIX}{stage}" for stage in range(NUM_STAGES))


def expand_corpus(specs: Sequence[str]) -> tuple[str, ...]:
    """`corpus` in a chunk list stands for every corpus stage, one chunk each."""
    return tuple(s for spec in specs for s in (CORPUS_STREAM if spec == "corpus" else (spec,)))
END_MARKER = "END"
CHUNK_SUFFIXES = {".csv", ".tsv", ".tar"}
logger = logging.getLogger(__name__)


class ChunkStream:
    """The chunk specs in order. A watched folder's chunk k is fixed when first taken: `taken` (kept
    in the run state, so a resumed run sees the same chunks) grows by the oldest-named entry that is
    new, settled (its size and modification time unchanged for one poll, or untouched for
    `settle_seconds`) and of a known kind (.csv/.tsv/.tar, or a folder); other files are reported
    once and ignored, and so is a folder still empty when END arrives. What is written into a chunk
    after it was taken is not used. `sleep` waits between polls (a run passes one that a
    preemption signal interrupts)."""

    def __init__(self, specs: Sequence[str] = (), watch: str | Path | None = None, poll_seconds: float = 2.0,
                 taken: list[str] | None = None, settle_seconds: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if bool(specs) == (watch is not None):
            raise DataError("a stream is either a list of chunks or a watched folder")
        self.specs, self.watch, self.poll_seconds = list(specs), Path(watch) if watch else None, poll_seconds
        if self.watch is not None and not self.watch.is_dir():
            raise DataError(f"{self.watch}: the watched folder does not exist")
        self.taken = taken if taken is not None else []
        self.settle_seconds, self.sleep = settle_seconds, sleep
        self._signatures: dict[Path, tuple] = {}
        self._reported: set[Path] = set()

    def known(self) -> list[str]:
        """The chunks there are now (of a watched folder: those taken)."""
        return self.specs if self.watch is None else self.taken

    def ended(self) -> bool:
        return self.watch is None or (self.watch / END_MARKER).exists()

    def get(self, index: int, wait: bool = True) -> str | None:
        """Chunk `index`; a watched folder is polled until it appears. None once the stream has ended."""
        if self.watch is None:
            return self.specs[index] if index < len(self.specs) else None
        while index >= len(self.taken):
            ready, pending = self._scan()
            if ready:
                self.taken.append(_watched_spec(ready))
            elif (self.ended() and not pending) or not wait:
                return None
            else:
                self.sleep(self.poll_seconds)
        return self.taken[index]

    def _scan(self) -> tuple[Path | None, bool]:
        """-> (the first settled new entry, whether any new entry is still being written)."""
        taken, pending = set(self.taken), False
        for path in sorted(self.watch.iterdir()):
            if path.name.startswith(".") or path.suffix == ".tmp" or path.name == END_MARKER:
                continue
            if path.is_file() and path.suffix.lower() not in CHUNK_SUFFIXES:
                self._report(path, "not a chunk (a table, shards or a folder)")
                continue
            if _watched_spec(path) in taken:
                continue
            if path.is_dir() and self.ended() and not any(p.is_file() for p in path.rglob("*")):
                self._report(path, "an empty folder when the stream ended")
                continue
            if self._settled(path):
                return path, pending
            pending = True
        return None, pending

    def _report(self, path: Path, why: str) -> None:
        if path not in self._reported:
            logger.warning("%s: %s; ignored", path, why)
            self._reported.add(path)

    def _settled(self, path: Path) -> bool:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        stats = [f.stat() for f in files]
        signature = tuple((str(f), s.st_size, s.st_mtime_ns) for f, s in zip(files, stats))
        previous, self._signatures[path] = self._signatures.get(path), signature
        quiet = time.time() - max((s.st_mtime for s in stats), default=0.0) >= self.settle_seconds
        return bool(files) and (signature == previous or quiet)


def _watched_spec(path: Path) -> str:
    shards = sorted(path.glob("*.tar")) if path.is_dir() else []
    return "::".join(str(s) for s in shards) if shards else str(path)


@dataclass
class ChunkData:
    name: str
    sources: PairSources  # what training reads: the chunk less its held-out split
    heldout: RetrievalSet  # one caption per image


class ArrivedChunks:
    """The stream's chunks, opened as they are first needed, with their sizes and what each trains on.

    `replay` None: a chunk trains on every chunk so far (cumulative); r: on itself plus r x its size
    of pairs drawn from the older ones. Held-out splits and replay draws have their own seeds."""

    def __init__(self, stream: ChunkStream, corpus: EmbeddedCorpus, options: ReaderOptions, heldout: int,
                 seed: int, replay: float | None = None) -> None:
        self.stream, self.corpus, self.options, self.heldout = stream, corpus, options, heldout
        self.seed, self.replay = seed, replay
        self.opened: list[ChunkData] = []
        self.counts: dict[int, int] = {}

    def __getitem__(self, index: int) -> ChunkData:
        while len(self.opened) <= index:
            spec = self.stream.get(len(self.opened))
            self.opened.append(open_chunk(spec, self.corpus, self.options, self.heldout,
                                          derive_seed(self.seed, len(self.opened))))
        return self.opened[index]

    def records(self, index: int) -> int:
        """Training pairs of chunk `index`, counted once (shards from their tar headers)."""
        if index not in self.counts:
            count = self[index].sources.count()
            if count is None:
                raise DataError(f"{self[index].name}: size unknown (remote shards); give --chunk-samples")
            self.counts[index] = count
        return self.counts[index]

    def pairs_seen(self, index: int) -> int:
        """Training pairs of chunks 0..index."""
        return sum(self.records(i) for i in range(index + 1))

    def train_data(self, index: int) -> PairSources:
        new = self[index].sources
        if index == 0:
            return new
        old = join_sources([self[i].sources for i in range(index)])
        if self.replay is None:
            return join_sources([old, new])
        fraction = self.replay * self.records(index) / self.pairs_seen(index - 1)
        return join_sources([new, old.sample(fraction, derive_seed(self.seed, index, 1))])

    def heldouts(self, index: int) -> list[RetrievalSet]:
        """Held-out pairs of chunks 0..index, the newest last."""
        return [self[i].heldout for i in range(index + 1)]


def open_chunk(spec: str, corpus: EmbeddedCorpus, options: ReaderOptions | None = None, heldout: int = 256,
               seed: int = 0) -> ChunkData:
    if spec.startswith(CORPUS_PREFIX):
        stage = int(spec[len(CORPUS_PREFIX) :])
        sources = PairSources([CorpusSource(corpus, (stage,))])
        return ChunkData(spec, sources, corpus.retrieval_set(heldout, captions_per_image=1, stage=stage))
    sources, heldout_set = hold_out(open_sources(spec, options or ReaderOptions()), heldout, seed, corpus.image_size,
                                    spec)
    return ChunkData(spec, sources, heldout_set)


def hold_out(sources: PairSources, size: int, seed: int, image_size: int, name: str
             ) -> tuple[PairSources, RetrievalSet]:
    """-> (the sources less the held-out records, the held-out pairs): `size` indexed records drawn
    with `seed` (at most a tenth of them), or else the first `size` shard samples."""
    transform, rng = CenterCrop(image_size), np.random.default_rng(seed)
    indexed = sources.indexed_count
    chosen = None
    if indexed:
        chosen = set(rng.choice(indexed, size=min(size, max(1, indexed // 10)), replace=False).tolist())
    images, texts, taken = [], [], set()
    for part, record in sources.all_records():
        if chosen is not None and record not in chosen:
            continue
        taken.add(record if isinstance(record, int) else sample_key(record) if isinstance(record, dict) else None)
        item = sources.load(part, record, transform, lambda: rng)
        if not isinstance(item, Skip):
            images.append(item.image)
            texts.append(item.caption)
        if len(taken) == (len(chosen) if chosen is not None else size):
            break
    if not images:
        raise DataError(f"{name}: no readable pairs to hold out for scoring growth")
    return sources.without(taken - {None}), RetrievalSet(name, np.stack(images), texts, list(range(len(texts))))
