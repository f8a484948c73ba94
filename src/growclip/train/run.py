"""`growclip.train(config)`: the one entry to training. A config with a stream (chunks or a watched
folder) is a growing run (`train.growing`); otherwise one fixed architecture trains on the
embedded corpus or `--train-data`, saves and is evaluated."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from growclip.checkpoint import EVAL_RESULTS, SavedRun, read_checkpoint
from growclip.data.pairs import DataError, format_skipped
from growclip.data.sources import PairSources
from growclip.growth.lineage import LINEAGE, GrowthLineage
from growclip.model.factory import create_model
from growclip.train.config import TrainConfig
from growclip.train.distributed import SINGLE, World
from growclip.train.faults import preemption_signals
from growclip.train.growing import GrowingRun
from growclip.train.inputs import build_inputs
from growclip.train.loop import Trainer
from growclip.train.records import ChunkRecord
from growclip.train.run_folder import RunFolder
from growclip.train.sections import OptimConfig
from growclip.train.start import TrainResult, count_forgetting, metrics_log, resume_checkpoint, start_run

logger = logging.getLogger(__name__)


def train(config: TrainConfig, on_chunk: Callable[[ChunkRecord], None] | None = None) -> TrainResult:
    """Train as `config` says; `on_chunk` sees each of a growing run's chunk records as it finishes
    (the CLI prints it). Under torchrun every process runs this; rank 0 owns the run folder, writes
    and evaluates."""
    if config.stream.active:
        with preemption_signals():  # setting up may wait (for a watched folder's first chunk, say)
            return GrowingRun(config).run(on_chunk)
    start = start_run(config)
    with RunFolder(config, owner=start.world.is_main) as folder:
        checkpoint = resume_checkpoint(config.run)
        saved = read_checkpoint(checkpoint, start.device) if checkpoint is not None else None
        if saved is not None:
            config.check_resume(saved.settings, saved.path)
            inputs = build_inputs(config, saved.model.config, saved.tokenizer)
        else:
            inputs = build_inputs(config, start.model)
        if inputs.evals.skipped:
            logger.info("validation data: %s", format_skipped(inputs.evals.skipped))
        steps = total_steps(config.optim, inputs.sources, start.world)
        if config.optim.warmup >= steps and start.world.is_main:
            logger.warning("--warmup %d is not shorter than the run's %d steps: the learning rate never reaches "
                           "--lr %g; lower --warmup", config.optim.warmup, steps, config.optim.lr)
        folder.start()
        model = saved.model if saved is not None else create_model(start.model, seed=config.optim.seed).to(start.device)
        forgetting = count_forgetting(config, inputs.evals, lambda: model, inputs.tokenizer, saved, start.world)
        resumed = saved if saved is not None and saved.progress is not None else None  # not weights only
        trainer = Trainer(config, model.train(), inputs, steps, None, owners={**forgetting, **lineage_of(saved)},
                          world=start.world)
        return _train_fixed(config, trainer, resumed)


def lineage_of(saved: SavedRun | None) -> dict[str, GrowthLineage]:
    """The starting model's growth steps, carried into the run's checkpoints (`growclip merge` reads them)."""
    lineage = GrowthLineage.from_part(saved.parts.get(LINEAGE)) if saved is not None else GrowthLineage()
    return {LINEAGE: lineage} if lineage.steps else {}


def total_steps(optim: OptimConfig, sources: PairSources, world: World = SINGLE) -> int:
    step_samples = optim.step_samples(world.size)
    if optim.samples:
        return optim.samples // step_samples
    records = sources.count()
    if records is None:
        raise DataError("the number of samples in remote shards is unknown: give --samples")
    return max(1, int(records * optim.epochs) // step_samples)


def _train_fixed(config: TrainConfig, trainer: Trainer, saved: SavedRun | None) -> TrainResult:
    output, world = Path(config.run.output), trainer.world
    with metrics_log(config.run, saved.progress.step if saved else None, world) as trainer.log:
        if saved is not None:
            trainer.restore(saved)
            logger.info("resumed from %s at step %d of %d", saved.path, trainer.step, trainer.steps)
        trainer.run()
        path = trainer.checkpoints.path(trainer.step)
        if trainer.saved_step < trainer.step or not path.is_dir():  # or forked from a finished run elsewhere
            path = trainer.save()
        results = trainer.evaluate(final=True) if world.is_main else None
    if results is not None and results.measured:
        (output / EVAL_RESULTS).write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    return TrainResult(trainer.model.eval(), path, trainer.step, trainer.progress.samples, trainer.losses, results,
                       dict(trainer.batches.total_skipped), [])
