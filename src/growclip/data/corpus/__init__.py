"""The embedded corpus: procedural image-caption pairs in stages of growing concepts and volume.

Every sample is a pure function of (seed, split, stage, index), so any worker can render any
sample, runs are reproducible, and nothing is downloaded or written to disk (a corpus keeps the
samples it rendered in memory, up to a budget: `cache.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from growclip.data.corpus.attributes import NUM_STAGES
from growclip.data.corpus.cache import DEFAULT_CACHE_MIB, RenderCache
from growclip.data.corpus.render import render
from growclip.data.corpus.scenes import caption, sample_scene
from growclip.data.corpus.tasks import TASKS, CorpusTask
from growclip.data.evalsets import RetrievalSet, ZeroShotTask
from growclip.runtime import derived_rng

DEFAULT_STAGE_SIZES = (8_000, 16_000, 32_000, 64_000)
_SPLITS = {"train": 0, "val": 1, "zeroshot": 2}


def _rng(seed: int, split: str, *keys: int) -> np.random.Generator:
    return derived_rng(seed, _SPLITS[split], *keys)


class StageDataset(Dataset):
    """Pairs of one stage. Items: ((S, S, 3) uint8 image, caption)."""

    def __init__(self, seed: int, stage: int, size: int, image_size: int, cache: RenderCache | None = None) -> None:
        self.seed, self.stage, self.size, self.image_size = seed, stage, size, image_size
        self.cache = (cache or RenderCache(0)).for_dataset(size, (image_size, image_size, 3))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[np.ndarray, str]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.cache.get(index, lambda: self._render(index))

    def _render(self, index: int) -> tuple[np.ndarray, str]:
        rng = _rng(self.seed, "train", self.stage, index)
        scene = sample_scene(rng, self.stage)
        return render(scene, self.image_size, rng), caption(scene, self.stage, rng)


class TaskDataset(Dataset):
    """Balanced images of one zero-shot task, drawn from the full (last-stage) distribution."""

    def __init__(self, seed: int, task_index: int, images_per_class: int, image_size: int,
                 cache: RenderCache | None = None) -> None:
        self.task: CorpusTask = TASKS[task_index]
        self.seed, self.task_index, self.image_size = seed, task_index, image_size
        self.size = images_per_class * len(self.task.classnames)
        self.cache = (cache or RenderCache(0)).for_dataset(self.size, (image_size, image_size, 3))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.cache.get(index, lambda: self._render(index))

    def _render(self, index: int) -> tuple[np.ndarray, int]:
        label = index % len(self.task.classnames)
        rng = _rng(self.seed, "zeroshot", self.task_index, index)
        scene = sample_scene(rng, NUM_STAGES - 1, kind=self.task.kind, fixed=self.task.fixed(label))
        return render(scene, self.image_size, rng), label


class EmbeddedCorpus:
    """Stage k adds attribute families and values that stages < k never showed, and more pairs."""

    num_stages = NUM_STAGES

    def __init__(self, seed: int = 0, image_size: int = 32, stage_sizes: Sequence[int] = DEFAULT_STAGE_SIZES,
                 cache_mib: float = DEFAULT_CACHE_MIB):
        """`cache_mib`: memory for rendered images, shared by all of this corpus's datasets."""
        if len(stage_sizes) != NUM_STAGES or any(size <= 0 for size in stage_sizes):
            raise ValueError(f"stage_sizes needs {NUM_STAGES} positive sizes, got {tuple(stage_sizes)}")
        self.seed, self.image_size, self.stage_sizes = seed, image_size, tuple(stage_sizes)
        self.cache = RenderCache(cache_mib)
        self._stages: dict[int, StageDataset] = {}  # one per stage, so the cache budget is taken once

    def stage(self, stage: int) -> StageDataset:
        if not 0 <= stage < NUM_STAGES:
            raise ValueError(f"stage must be in 0..{NUM_STAGES - 1}, got {stage}")
        if stage not in self._stages:
            self._stages[stage] = StageDataset(self.seed, stage, self.stage_sizes[stage], self.image_size, self.cache)
        return self._stages[stage]

    def train_data(self, stages: Sequence[int] | None = None) -> Dataset:
        """The chosen stages (default: all), concatenated."""
        stages = range(NUM_STAGES) if stages is None else stages
        return ConcatDataset([self.stage(k) for k in stages])

    def tokenizer_captions(self, per_stage: int = 2_000) -> list[str]:
        """Captions from every stage and the task prompts, so all corpus words get whole tokens."""
        captions = []
        for stage in range(NUM_STAGES):
            for index in range(per_stage):  # wording only: scenes are sampled but not rendered
                rng = _rng(self.seed, "train", stage, index)
                captions.append(caption(sample_scene(rng, stage), stage, rng))
        prompts = [t.format(c) for task in TASKS for c in task.classnames for t in task.templates]
        return captions + prompts

    def zeroshot_tasks(self, images_per_class: int = 40) -> list[ZeroShotTask]:
        return [
            ZeroShotTask(task.name, task.classnames, task.templates,
                         TaskDataset(self.seed, index, self._per_class(task, images_per_class), self.image_size,
                                     self.cache))
            for index, task in enumerate(TASKS)
        ]

    @staticmethod
    def _per_class(task: CorpusTask, images_per_class: int) -> int:
        """Large label sets get fewer images per class so every task costs about the same."""
        return max(4, images_per_class * 10 // max(10, len(task.classnames)))

    def retrieval_set(self, images: int = 500, captions_per_image: int = 3,
                      stage: int = NUM_STAGES - 1, name: str | None = None) -> RetrievalSet:
        """Held-out pairs of `stage`'s distribution, each image with several differently worded captions
        (the first `images` of one fixed stream of scenes: a larger set holds a smaller one's images)."""
        pixels = np.empty((images, self.image_size, self.image_size, 3), dtype=np.uint8)
        texts: list[str] = []
        for index in range(images):
            rng = _rng(self.seed, "val", stage, index)
            scene = sample_scene(rng, stage)
            pixels[index] = render(scene, self.image_size, rng)
            texts += [caption(scene, stage, rng) for _ in range(captions_per_image)]
        return RetrievalSet(name or f"corpus-stage{stage}", pixels, texts,
                            [i for i in range(images) for _ in range(captions_per_image)])


__all__ = ["DEFAULT_STAGE_SIZES", "NUM_STAGES", "EmbeddedCorpus", "StageDataset", "TaskDataset"]
