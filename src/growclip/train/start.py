"""What every run does first, fixed or growing: its processes and device, its start architecture,
the checkpoint it resumes from, where it counts forgetting from, its metrics log; and the one
result every run returns."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from growclip.checkpoint import Checkpointer, SavedRun, Stateful, resolve_checkpoint, restore
from growclip.data.tokenizer import Tokenizer
from growclip.eval.sets import EvalSets
from growclip.eval.suite import FORGETTING, EvalResults
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.factory import load_config
from growclip.runtime import resolve_device, seed_everything, warn_if_slow_precision
from growclip.train.config import TrainConfig
from growclip.train.distributed import World, init_world, process_device
from growclip.train.metrics import MetricsLog
from growclip.train.records import ChunkRecord
from growclip.train.sections import RunConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run returns, fixed or growing."""

    model: CLIP  # trained, in eval mode
    checkpoint: Path  # the last one saved
    steps: int  # optimizer steps of the whole run
    samples: int
    losses: list[float]  # this invocation's steps (a resumed run: those after the checkpoint)
    eval: EvalResults | None  # the final evaluation; None on the ranks of a torchrun job but 0
    skipped: dict[str, int]  # records skipped while reading, by reason (this invocation's)
    chunks: list[ChunkRecord]  # a growing run's records, one per chunk; empty for a fixed run


@dataclass(frozen=True)
class RunStart:
    """Where a run's process trains and the architecture the run starts from."""

    world: World
    device: torch.device
    model: ModelConfig


def start_run(config: TrainConfig) -> RunStart:
    """The device (one per process under torchrun), the start architecture (a misspelt --model
    fails before anything is written), the seeds, and a warning where the precision is slow here;
    before the run folder is claimed."""
    resolved = resolve_device(config.run.device)
    world = init_world(resolved)
    start = RunStart(world, process_device(resolved, world), load_config(config.model))
    seed_everything(config.optim.seed)
    warn_if_slow_precision(start.device, config.optim.precision)
    return start


def resume_checkpoint(run: RunConfig) -> Path | None:
    """The checkpoint `--resume` names: None for a new run (also for `latest` with none yet)."""
    if not run.resume:
        return None
    if run.resume != "latest":
        return resolve_checkpoint(run.resume)
    latest = Checkpointer(run.output).latest()
    if latest is None:
        logger.warning("--resume latest: no checkpoint in %s yet, starting a new run", run.output)
    return latest


def metrics_log(run: RunConfig, resume_step: int | None, world: World) -> AbstractContextManager[MetricsLog | None]:
    """The run's metrics log on rank 0; nothing on the other ranks."""
    if not world.is_main:
        return nullcontext()
    return MetricsLog(Path(run.output) / "metrics.jsonl", run.report_to == "tensorboard", resume_step=resume_step)


def count_forgetting(config: TrainConfig, evals: EvalSets, start_model: Callable[[], CLIP], tokenizer: Tokenizer,
                     saved: SavedRun | None, world: World) -> dict[str, Stateful]:
    """Where the run counts forgetting from (`--forgetting-data`): the start its own checkpoint kept
    when it resumes, else the model the run starts from (an imported or another run's model; built
    only if needed). -> the checkpoint part that keeps it, for the run's checkpoints."""
    if not evals.retained:
        return {}
    own = saved is not None and saved.path.resolve().is_relative_to(Path(config.run.output).resolve())
    if own and saved.has(FORGETTING):
        restore(saved, {FORGETTING: evals})
    elif world.is_main:
        evals.measure_start(start_model(), tokenizer, config.optim.precision)
        logger.info("forgetting counted from the starting model's top-1: %s",
                    ", ".join(f"{name} {top1:.3f}" for name, top1 in evals.retained_start.items()))
    return {FORGETTING: evals}
