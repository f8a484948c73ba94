"""The training loop: one schedule of steps with logs, evaluations and checkpoints; resumable bit
for bit. A fixed run is one such loop; a growing run runs one per chunk."""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from growclip.checkpoint import Checkpointer, Progress, SavedRun, Stateful, restore
from growclip.eval.suite import EvalResults, evaluate_sets
from growclip.model.clip import CLIP
from growclip.model.cost import train_flops_per_sample
from growclip.runtime import peak_flops
from growclip.train.config import TrainConfig
from growclip.train.distributed import SINGLE, World, gather_objects, mean_over_ranks, sync_flags
from growclip.train.faults import NonFiniteError, Preempted, preemption_signals, stop_requested
from growclip.train.inputs import RunInputs
from growclip.train.metrics import MetricsLog
from growclip.train.optim import warmup_cosine
from growclip.train.owners import DataPositions, GlobalRNG, LossScaler, LRSchedule, OptimizerMoments
from growclip.train.pace import Pace, PaceWindow
from growclip.train.step import Stepper

logger = logging.getLogger(__name__)


class Trainer:
    """One schedule of a run: steps its model, logs, evaluates, saves and resumes."""

    def __init__(self, config: TrainConfig, model: CLIP, inputs: RunInputs, steps: int, log: MetricsLog | None,
                 base_step: int = 0, owners: Mapping[str, Stateful] | None = None, warmup: int | None = None,
                 data_seed: int | None = None, world: World = SINGLE) -> None:
        """`base_step`: steps before this schedule in a longer run (a stream's earlier chunks), so that
        logs and checkpoint names count globally; `owners`: more state for every checkpoint (a growing
        run's progress); `warmup`: warm-up steps of this schedule (default `config.optim.warmup`);
        `data_seed`: the shuffle (default `config.optim.seed`); `world`: the processes of a torchrun job
        (DDP; rank 0 logs, evaluates and writes)."""
        self.config, self.model, self.inputs, self.steps, self.log = config, model, inputs, steps, log
        self.base_step, self.more_owners, self.world = base_step, dict(owners or {}), world
        optim = config.optim
        warmup = optim.warmup if warmup is None else warmup
        self.stepper = Stepper(optim, model, inputs, lambda optimizer: warmup_cosine(optimizer, warmup, steps),
                               optim.seed if data_seed is None else data_seed, world, config.run.workers, optim.compile)
        self.optimizer, self.batches = self.stepper.optimizer, self.stepper.batches
        self.schedule = LRSchedule(self.optimizer, self.stepper.scheduler)
        self.checkpoints = Checkpointer(config.run.output, config.run.keep_checkpoints)
        self.flops_per_sample = train_flops_per_sample(model.config)
        self.step_samples = config.optim.step_samples(world.size)
        self.step = 0
        self.position = self.batches.state_dict()  # the data position at the end of `self.step`
        self.saved_step = 0  # nothing worth saving before the first step
        self.saved_at = time.monotonic()
        self.losses: list[float] = []
        self.pace = PaceWindow(self.step_samples, config.run.workers, warn=world.is_main)  # this invocation's

    def _owners(self, data: DataPositions) -> dict[str, Stateful]:
        """The state this schedule owns (a growing run's own state is in `more_owners`)."""
        return {"optimizer": OptimizerMoments(self.optimizer, self.model), "schedule": self.schedule,
                "rng": GlobalRNG(), "grad_scaler": LossScaler(self.stepper.scaler), "data": data}

    def restore(self, saved: SavedRun) -> None:
        """Continue from a checkpoint written by `save` (model weights are already loaded), on as many
        processes as wrote it or on another number: then the rest of the epoch is dealt anew and the
        step count and schedule follow the new global batch."""
        data = DataPositions()
        owners = self._owners(data)
        same_world = saved.progress.processes == self.world.size
        if not same_world:  # the schedule moves to the step counted in the new global batch (below)
            del owners["schedule"]
        if not saved.has("grad_scaler"):  # saved before loss scalers were
            del owners["grad_scaler"]
        restore(saved, owners)
        self.batches.load_state_dict(self.batches.adopt(data.ranks))
        self.step = saved.progress.step
        if not same_world:
            self.step = saved.progress.step * saved.progress.processes // self.world.size
            self.schedule.move_to(self.step)
            logger.info("saved by %d processes, resumed on %d: step %d is now step %d", saved.progress.processes,
                        self.world.size, saved.progress.step, self.step)
        self.saved_step = self.step
        self.position = self.batches.state_dict()

    @property
    def global_step(self) -> int:
        return self.base_step + self.step

    @property
    def progress(self) -> Progress:
        return Progress(self.step, self.global_step, self.global_step * self.step_samples, self.world.size)

    def save(self) -> Path:
        """Every process calls it (the data positions are gathered); rank 0 writes."""
        data = DataPositions(gather_objects(self.position, self.world))
        path = self.checkpoints.path(self.global_step)
        self.saved_at = time.monotonic()
        if self.world.is_main:
            self.checkpoints.save(self.model, self.inputs.tokenizer, self.progress,
                                  self._owners(data) | self.more_owners, self.config.to_dict())
        self.saved_step = self.step  # only once it is written: a failed save leaves the step unsaved
        return path

    def evaluate(self, final: bool = False) -> EvalResults:
        """Logged under "eval"; the final record also carries the run's skip counts."""
        results = evaluate_sets(self.model, self.inputs.tokenizer, self.inputs.evals, self.config.optim.precision)
        record = {"step": self.global_step, "samples": self.progress.samples, **results.summary}
        if final:
            record |= {"final": True, **self._skip_fields()}
        if self.log is not None:
            self.log.write(record, "eval")
        return results

    def _skip_fields(self) -> dict[str, int | dict[str, int]]:
        skipped = self.batches.total_skipped
        return {"skipped": sum(skipped.values()), "skipped_by_reason": dict(skipped)}

    def run(self) -> None:
        """Train to `steps`. Any exception (Ctrl-C and preemption signals included) first saves the
        last completed step, except a stop for non-finite steps, which keeps the last checkpoint.
        Several processes save only on preemption, which every rank meets at the same step."""
        try:
            with preemption_signals():
                self.train()
        except NonFiniteError:
            raise
        except BaseException as error:
            if self.step > self.saved_step and (isinstance(error, Preempted) or not self.world.distributed):
                logger.warning("stopped: saved %s", self.save())
            raise

    def train(self) -> None:
        """Train to `steps`, saving only as `save_every` asks."""
        config, report = self.config, self.world.is_main
        progress = tqdm(initial=self.step, total=self.steps, disable=not (config.run.progress and report), desc="train",
                        unit="step", mininterval=0.1 if sys.stderr.isatty() else 60)  # a log file: once a minute
        self.pace.open()
        while self.step < self.steps:
            lr = self.schedule.scheduler.get_last_lr()[0]
            loss, waited = self.stepper.step()
            self.step, self.position = self.step + 1, self.batches.state_dict()
            self._check_finite(loss)
            self.losses.append(loss)
            self.pace.stepped(waited)
            progress.update()
            if self.step % config.run.log_every == 0 or self.step == self.steps:
                pace = self.pace.close()
                self._log_step(mean_over_ranks(loss, self.world), lr, pace)
                progress.set_postfix(loss=f"{loss:.3f}", samples_s=f"{pace.samples_per_s:.0f}",
                                     refresh=False)  # redrawn by update()
            if report and config.eval.eval_every and self.step % config.eval.eval_every == 0 and self.step < self.steps:
                self.evaluate()
            save_due, stop = sync_flags([self._save_due(), stop_requested()], self.world)
            if self.step < self.steps and save_due:
                self.save()
            if stop:
                raise Preempted(stop_requested() or signal.SIGTERM)
        progress.close()

    def _save_due(self) -> bool:
        every, minutes = self.config.run.save_every, self.config.run.save_every_minutes
        return bool(every and self.step % every == 0) or bool(
            minutes and time.monotonic() - self.saved_at >= 60 * minutes)

    def _check_finite(self, loss: float) -> None:
        """Non-finite steps were skipped (no update); too many in a row stop the run."""
        if not math.isnan(loss):
            return
        logger.warning("step %d: non-finite loss or gradients, step skipped", self.global_step)
        if self.stepper.diverged:
            raise NonFiniteError(f"step {self.global_step}: loss or gradients non-finite for "
                                 f"{self.stepper.nonfinite_in_a_row} steps in a row; the run stops and keeps its "
                                 f"last checkpoint (step {self.base_step + self.saved_step}); lower --lr or check "
                                 f"the data")

    def _log_step(self, loss: float, lr: float, pace: Pace) -> None:
        if self.log is None:
            return
        flops = pace.samples_per_s * self.flops_per_sample
        peak = peak_flops(next(self.model.parameters()).device, self.config.optim.precision) * self.world.size
        record = {"step": self.global_step, "samples": self.progress.samples, "epoch": self.position["epoch"],
                  "loss": loss, "lr": lr, "logit_scale": self.model.scale().item(),
                  "samples_per_s": pace.samples_per_s, "tflops_per_s": flops / 1e12, "utilisation": flops / peak,
                  "data_wait": pace.data_wait, "nonfinite_steps": self.stepper.nonfinite_steps}
        self.log.write(record | self._skip_fields())
