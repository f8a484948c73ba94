"""The training stream: full batches of readable pairs, read by DataLoader workers, resumable exactly.

Each worker is a *lane* that reads every `lanes`-th part of the epoch (see `data.sources`), skips
bad records (counting why), and sends chunks of `batch_size` good pairs. With several processes
(`rank` of `world`), the lanes of all of them share the epoch: process r's worker w is lane
r + w x world, so every pair is read once per epoch across the processes. The main process takes
chunks lane by lane in a fixed round-robin, whatever order the workers finish in, so the batch
sequence depends only on (seed, number of workers). The position (epoch, records taken per lane,
next lane, skip counts) is a small dict, saved with every checkpoint.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterator
from itertools import islice
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.filters import _shuffle

from growclip.data.loader import PairCollate
from growclip.data.pairs import DataError, ImageTransform, Pair, Skip, add_counts, format_skipped
from growclip.data.sources import PairSources, Part
from growclip.data.tokenizer import Tokenizer

Batch = tuple[torch.Tensor, torch.Tensor]  # (B, 3, S, S) images, (B, L) tokens
SHUFFLE_BUFFER = 2000  # raw (undecoded) samples a lane holds to mix consecutive shards


class Chunk(NamedTuple):
    lane: int
    cursor: int  # records of the lane read once this chunk is taken
    batch: Batch | None  # None marks the end of the lane's epoch
    skipped: dict[str, int]


def _as_is(chunk: Chunk) -> Chunk:
    return chunk


class LaneReader(IterableDataset):
    """One epoch of one lane (the worker's id), resumed after `cursors[lane]` records."""

    def __init__(self, sources: PairSources, tokenizer: Tokenizer, transform: ImageTransform, batch_size: int,
                 seed: int, epoch: int, cursors: list[int], rank: int = 0, world: int = 1) -> None:
        self.sources, self.collate, self.transform = sources, PairCollate(tokenizer), transform
        self.batch_size, self.seed, self.epoch, self.cursors = batch_size, seed, epoch, cursors
        self.rank, self.world = rank, world

    def _records(self, lane: int) -> Iterator[tuple[Part, int, int, Any]]:
        """(part, part number in the epoch, position in the part, raw record) of this lane's parts.
        Shards are read in order, so with shards the lane's stream goes through a seeded shuffle
        buffer spanning consecutive shards, as a webdataset pipeline does."""
        parts = self.sources.epoch_parts(self.seed, self.epoch, self.batch_size)
        first, stride = self.rank + lane * self.world, len(self.cursors) * self.world
        tagged = ((parts[number], number, position, record)
                  for number in range(first, len(parts), stride)
                  for position, record in enumerate(self.sources.records(parts[number])))
        if not self.sources.sharded:
            return tagged
        rng = random.Random(f"{self.seed}/{self.epoch}/{first}")
        return _shuffle(tagged, SHUFFLE_BUFFER, SHUFFLE_BUFFER // 5, rng=rng)

    def __iter__(self) -> Iterator[Chunk]:
        info = get_worker_info()
        lane = info.id if info else 0
        cursor = self.cursors[lane]
        good: list[Pair] = []
        skipped: Counter = Counter()
        for part, number, position, record in islice(self._records(lane), cursor, None):
            cursor += 1
            rng = np.random.default_rng([self.seed, self.epoch, number, position])  # augmentation of this record
            item = self.sources.load(part, record, self.transform, rng)
            if isinstance(item, Skip):
                skipped[item.reason] += 1
                continue
            good.append(item)
            if len(good) == self.batch_size:
                yield Chunk(lane, cursor, self.collate(good), dict(skipped))
                good, skipped = [], Counter()
        yield Chunk(lane, cursor, None, dict(skipped))  # a last partial batch is dropped, as drop_last does


class TrainStream:
    """Endless batches over epochs; `state_dict()` after any batch resumes right after it."""

    def __init__(self, sources: PairSources, tokenizer: Tokenizer, transform: ImageTransform, batch_size: int,
                 seed: int, workers: int = 0, state: dict[str, Any] | None = None, rank: int = 0,
                 world: int = 1) -> None:
        self.sources, self.tokenizer, self.transform = sources, tokenizer, transform
        self.batch_size, self.seed, self.workers, self.rank, self.world = batch_size, seed, workers, rank, world
        self.lanes = max(1, workers)
        self.epoch, self.cursors, self.ended, self.next_lane = 0, [0] * self.lanes, [False] * self.lanes, 0
        self.skipped: Counter = Counter()
        if state is not None:
            self.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "cursors": list(self.cursors), "ended": list(self.ended),
                "next_lane": self.next_lane, "skipped": dict(self.skipped)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["cursors"]) != self.lanes:
            raise DataError(f"the data position was saved with {len(state['cursors'])} reader lanes "
                            f"(--workers {len(state['cursors'])}); resume with the same number of workers")
        self.epoch, self.next_lane = state["epoch"], state["next_lane"]
        self.cursors, self.ended = list(state["cursors"]), list(state["ended"])
        self.skipped = Counter(state["skipped"])

    @property
    def total_skipped(self) -> Counter:
        """Bad records found so far, on opening the sources and while reading (each counted once)."""
        total = self.sources.skipped_on_open
        add_counts(total, self.skipped)
        return total

    def __iter__(self) -> Iterator[Batch]:
        while True:
            fresh = not any(self.cursors)
            produced = 0
            for batch in self.one_epoch():
                produced += 1
                yield batch
            if fresh and not produced:
                lanes = f"; each of the {self.lanes} reader lanes (--workers) needs one" if self.lanes > 1 else ""
                raise DataError(f"not one full batch of {self.batch_size} readable pairs in a pass over "
                                f"{', '.join(self.sources.names)} ({format_skipped(self.total_skipped)}{lanes})")
            self.epoch, self.cursors, self.ended, self.next_lane = self.epoch + 1, [0] * self.lanes, \
                [False] * self.lanes, 0

    def one_epoch(self) -> Iterator[Batch]:
        """The rest of the current epoch, from the saved position (all of it on a fresh stream)."""
        reader = LaneReader(self.sources, self.tokenizer, self.transform, self.batch_size, self.seed, self.epoch,
                            list(self.cursors), self.rank, self.world)
        chunks = iter(DataLoader(reader, batch_size=None, num_workers=self.workers, collate_fn=_as_is))
        waiting: dict[int, deque[Chunk]] = {lane: deque() for lane in range(self.lanes)}
        while not all(self.ended):
            lane = self.next_lane
            while not waiting[lane]:
                chunk = next(chunks)
                waiting[chunk.lane].append(chunk)
            chunk = waiting[lane].popleft()
            self.cursors[lane] = chunk.cursor
            if self.epoch == 0:  # later passes meet the same bad records: count each once
                add_counts(self.skipped, chunk.skipped)
            self.ended[lane] = chunk.batch is None
            self.next_lane = self._following(lane)
            if chunk.batch is not None:
                yield chunk.batch

    def _following(self, lane: int) -> int:
        for step in range(1, self.lanes + 1):
            candidate = (lane + step) % self.lanes
            if not self.ended[candidate]:
                return candidate
        return 0
