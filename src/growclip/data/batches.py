"""A run's training batches: full batches of readable pairs, read by DataLoader workers, resumable exactly.

Each worker is a *lane* that reads every `lanes`-th part of the epoch (see `data.sources`), skips
bad records (counting why), and sends batches of `batch_size` good pairs. With several processes
(`rank` of `world`), the lanes of all of them share the epoch: process r's worker w is lane
r + w x world, so every pair is read once per epoch across the processes. The main process takes
batches lane by lane in a fixed round-robin, whatever order the workers finish in, so the batch
sequence depends only on (seed, number of workers). The position (epoch, records taken per lane,
next lane, skip counts) is a small dict, saved with every checkpoint.

An epoch's *plan* lists its parts as (part number, first record): all of each part normally, and
only what is left of them when a run resumes on a different number of processes or workers
(`remap_positions`), so that no pair is read twice or skipped within the epoch.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterator
from functools import partial
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


class LaneBatch(NamedTuple):
    """One batch of one lane (a loader worker's share of the records), with where the lane stands."""

    lane: int
    cursor: int  # records of the lane read once this batch is taken
    batch: Batch | None  # None marks the end of the lane's epoch
    skipped: dict[str, int]


def _as_is(batch: LaneBatch) -> LaneBatch:
    return batch


class LaneReader(IterableDataset):
    """One lane (the worker's id), an epoch per pass: the first pass is `epoch`, resumed after
    `cursors[lane]` records (of `plan`'s parts), each later pass the next epoch from its start. The
    passes are counted where the reader lives, so a persistent worker keeps both its place in the
    epochs and what its sources cache (the corpus's rendered images)."""

    def __init__(self, sources: PairSources, tokenizer: Tokenizer, transform: ImageTransform, batch_size: int,
                 seed: int, epoch: int, cursors: list[int], rank: int = 0, world: int = 1,
                 plan: list[tuple[int, int]] | None = None) -> None:
        self.sources, self.collate, self.transform = sources, PairCollate(tokenizer), transform
        self.batch_size, self.seed, self.epoch, self.cursors = batch_size, seed, epoch, cursors
        self.rank, self.world, self.plan = rank, world, plan
        self.passes = 0

    def _records(self, lane: int, epoch: int, plan: list[tuple[int, int]] | None
                 ) -> Iterator[tuple[Part, int, int, Any]]:
        """(part, part number in the epoch, position in the part, raw record) of this lane's parts.
        Shards are read in order, so with shards the lane's stream goes through a seeded shuffle
        buffer spanning consecutive shards, as a webdataset pipeline does."""
        parts = self.sources.epoch_parts(self.seed, epoch, self.batch_size)
        plan = plan if plan is not None else [(number, 0) for number in range(len(parts))]
        first, stride = self.rank + lane * self.world, len(self.cursors) * self.world
        tagged = ((parts[number], number, position, record)
                  for number, start in plan[first::stride]
                  for position, record in islice(enumerate(self.sources.records(parts[number])), start, None))
        if not self.sources.sharded:
            return tagged
        rng = random.Random(f"{self.seed}/{epoch}/{first}")
        return _shuffle(tagged, SHUFFLE_BUFFER, SHUFFLE_BUFFER // 5, rng=rng)

    def __iter__(self) -> Iterator[LaneBatch]:
        info = get_worker_info()
        lane = info.id if info else 0
        epoch = self.epoch + self.passes
        cursor, plan = (self.cursors[lane], self.plan) if self.passes == 0 else (0, None)
        self.passes += 1
        good: list[Pair] = []
        skipped: Counter = Counter()
        for part, number, position, record in islice(self._records(lane, epoch, plan), cursor, None):
            cursor += 1
            rng = partial(np.random.default_rng, [self.seed, epoch, number, position])  # its augmentation
            item = self.sources.load(part, record, self.transform, rng)
            if isinstance(item, Skip):
                skipped[item.reason] += 1
                continue
            good.append(item)
            if len(good) == self.batch_size:
                yield LaneBatch(lane, cursor, self.collate(good), dict(skipped))
                good, skipped = [], Counter()
        yield LaneBatch(lane, cursor, None, dict(skipped))  # a last partial batch is dropped, as drop_last does


class TrainBatches:
    """Endless batches over epochs; `state_dict()` after any batch resumes right after it."""

    def __init__(self, sources: PairSources, tokenizer: Tokenizer, transform: ImageTransform, batch_size: int,
                 seed: int, workers: int = 0, state: dict[str, Any] | None = None, rank: int = 0,
                 world: int = 1, pin_memory: bool = False) -> None:
        """`pin_memory`: batches in page-locked memory, for asynchronous copies to a GPU."""
        self.sources, self.tokenizer, self.transform = sources, tokenizer, transform
        self.pin_memory = pin_memory
        self.batch_size, self.seed, self.workers, self.rank, self.world = batch_size, seed, workers, rank, world
        self.lanes = max(1, workers)
        self.epoch, self.cursors, self.ended, self.next_lane = 0, [0] * self.lanes, [False] * self.lanes, 0
        self.plan: list[tuple[int, int]] | None = None  # this epoch's parts when not all of them (see above)
        self.skipped: Counter = Counter()
        self.loader: DataLoader | None = None  # kept from epoch to epoch, with its workers
        self.loader_epoch = 0  # the epoch `loader` reads on its next pass
        if state is not None:
            self.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        state = {"epoch": self.epoch, "cursors": list(self.cursors), "ended": list(self.ended),
                 "next_lane": self.next_lane, "skipped": dict(self.skipped)}
        return state if self.plan is None else {**state, "plan": [list(entry) for entry in self.plan]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["cursors"]) != self.lanes:
            raise DataError(f"the data position was saved with {len(state['cursors'])} reader lanes "
                            f"(--workers {len(state['cursors'])}); resume with the same number of workers")
        self.epoch, self.next_lane = state["epoch"], state["next_lane"]
        self.cursors, self.ended = list(state["cursors"]), list(state["ended"])
        self.plan = [tuple(entry) for entry in state["plan"]] if state.get("plan") is not None else None
        self.skipped = Counter(state["skipped"])
        self.loader = None

    def adopt(self, positions: list[dict[str, Any]]) -> dict[str, Any]:
        """This process's position from those `len(positions)` processes saved, whatever their
        number and workers were: the rest of their epoch dealt to the lanes of this run."""
        lanes = len(positions[0]["cursors"])
        if len(positions) == self.world and lanes == self.lanes:
            return positions[self.rank]
        if self.sources.sharded and any(any(p["cursors"]) for p in positions):
            raise DataError("a run reading webdataset shards resumes mid-epoch only on as many processes x "
                            f"workers as it was saved with ({len(positions)} x {lanes})")
        parts = self.sources.epoch_parts(self.seed, positions[0]["epoch"], self.batch_size)
        sizes = [len(part.indices) if part.indices is not None else 0 for part in parts]  # shards: unread
        return remap_positions(positions, sizes, self.world, self.lanes)[self.rank]

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
            self.plan = None

    def one_epoch(self) -> Iterator[Batch]:
        """The rest of the current epoch, from the saved position (all of it on a fresh start)."""
        lane_batches = iter(self._loader())
        waiting: dict[int, deque[LaneBatch]] = {lane: deque() for lane in range(self.lanes)}
        while not all(self.ended):
            lane = self.next_lane
            while not waiting[lane]:
                piece = next(lane_batches)
                waiting[piece.lane].append(piece)
            piece = waiting[lane].popleft()
            self.cursors[lane] = piece.cursor
            if self.epoch == 0:  # later passes meet the same bad records: count each once
                add_counts(self.skipped, piece.skipped)
            self.ended[lane] = piece.batch is None
            self.next_lane = self._following(lane)
            if piece.batch is not None:
                yield piece.batch

    def _loader(self) -> DataLoader:
        """The loader of the current epoch: the last one's, with the same workers, when this epoch
        follows it from its start; else a new one from where the position stands."""
        if self.loader is None or self.loader_epoch != self.epoch or any(self.cursors) or self.plan is not None:
            reader = LaneReader(self.sources, self.tokenizer, self.transform, self.batch_size, self.seed, self.epoch,
                                list(self.cursors), self.rank, self.world, self.plan)
            self.loader = DataLoader(reader, batch_size=None, num_workers=self.workers, collate_fn=_as_is,
                                     pin_memory=self.pin_memory, persistent_workers=self.workers > 0)
        self.loader_epoch = self.epoch + 1
        return self.loader

    def _following(self, lane: int) -> int:
        for step in range(1, self.lanes + 1):
            candidate = (lane + step) % self.lanes
            if not self.ended[candidate]:
                return candidate
        return 0


def remap_positions(positions: list[dict[str, Any]], part_sizes: list[int], world: int, lanes: int
                    ) -> list[dict[str, Any]]:
    """Data positions saved by `len(positions)` processes, for `world` processes of `lanes` lanes:
    what each old lane had read of its plan entries is taken off, and the entries left (in epoch
    order) make the new plan. `part_sizes`: records per part of the epoch."""
    epoch = positions[0]["epoch"]
    if any(p["epoch"] != epoch for p in positions):
        raise DataError("the checkpoint's processes were in different epochs (saved at an epoch's end); resume on "
                        f"as many processes ({len(positions)}) or from another checkpoint")
    old_lanes = len(positions[0]["cursors"])
    plan = positions[0].get("plan") or [(number, 0) for number in range(len(part_sizes))]
    stride, read = len(positions) * old_lanes, [0] * len(plan)
    for rank, position in enumerate(positions):
        for lane, cursor in enumerate(position["cursors"]):
            for entry in range(rank + lane * len(positions), len(plan), stride):
                number, start = plan[entry]
                read[entry] = min(cursor, part_sizes[number] - start)
                cursor -= read[entry]
    left = [(number, start + done) for (number, start), done in zip(plan, read)
            if not done or start + done < part_sizes[number]]
    skipped: Counter = Counter()
    for position in positions:
        add_counts(skipped, position["skipped"])
    return [{"epoch": epoch, "cursors": [0] * lanes, "ended": [False] * lanes, "next_lane": 0,
             "skipped": dict(skipped) if rank == 0 else {}, "plan": [list(entry) for entry in left]}
            for rank in range(world)]
