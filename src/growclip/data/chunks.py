"""A stream of data chunks: an ordered list, or a folder in which new chunks appear as the run goes.

A chunk is any training source spec (`data/a.tsv`, `shards/{000..009}.tar`, `photos/`, several
joined by `::`) or `corpus:K`, stage K of the embedded corpus. Each chunk keeps a small held-out
split (never trained on) that growth decisions and forgetting are scored on.

A watched folder's chunks are its entries in name order: a table file, an image folder, or a
folder of `.tar` shards. Write a chunk under a hidden or `.tmp` name and rename it when complete;
a file named `END` says the stream has ended.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import RetrievalSet
from growclip.data.pairs import DataError, Skip
from growclip.data.sources import CorpusSource, PairSources, ReaderOptions, open_sources, sample_key
from growclip.data.transforms import CenterCrop

CORPUS_PREFIX = "corpus:"
END_MARKER = "END"


class ChunkStream:
    def __init__(self, specs: Sequence[str] = (), watch: str | Path | None = None, poll_seconds: float = 2.0) -> None:
        if bool(specs) == (watch is not None):
            raise DataError("a stream is either a list of chunks or a watched folder")
        self.specs, self.watch, self.poll_seconds = list(specs), Path(watch) if watch else None, poll_seconds
        if self.watch is not None and not self.watch.is_dir():
            raise DataError(f"{self.watch}: the watched folder does not exist")

    def known(self) -> list[str]:
        """The chunks there are now."""
        if self.watch is None:
            return self.specs
        entries = sorted(p for p in self.watch.iterdir()
                         if not p.name.startswith(".") and p.suffix != ".tmp" and p.name != END_MARKER)
        return [_watched_spec(p) for p in entries]

    def ended(self) -> bool:
        return self.watch is None or (self.watch / END_MARKER).exists()

    def get(self, index: int, wait: bool = True) -> str | None:
        """Chunk `index`; a watched folder is polled until it appears. None once the stream has ended."""
        while True:
            known = self.known()
            if index < len(known):
                return known[index]
            if self.ended() or not wait:
                return None
            time.sleep(self.poll_seconds)


def _watched_spec(path: Path) -> str:
    shards = sorted(path.glob("*.tar")) if path.is_dir() else []
    return "::".join(str(s) for s in shards) if shards else str(path)


@dataclass
class ChunkData:
    name: str
    sources: PairSources  # what training reads: the chunk less its held-out split
    heldout: RetrievalSet  # one caption per image


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
        item = sources.load(part, record, transform, rng)
        if not isinstance(item, Skip):
            images.append(item.image)
            texts.append(item.caption)
        if len(taken) == (len(chosen) if chosen is not None else size):
            break
    if not images:
        raise DataError(f"{name}: no readable pairs to hold out for scoring growth")
    return sources.without(taken - {None}), RetrievalSet(name, np.stack(images), texts, list(range(len(texts))))
