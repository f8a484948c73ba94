"""The training loop: data in; checkpoints, metrics and evaluations out; resumable bit for bit."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from growclip.data.pairs import DataError, format_skipped
from growclip.data.sources import PairSources
from growclip.data.stream import Batch, TrainStream
from growclip.eval.suite import EvalResults, evaluate_sets
from growclip.growth.state import load_optimizer_tensors, optimizer_tensors
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.cost import train_flops_per_sample
from growclip.model.factory import create_model, load_config
from growclip.model.memory import check_fits
from growclip.runtime import (
    grad_scaler,
    peak_flops,
    resolve_device,
    seed_everything,
    warn_if_slow_precision,
)
from growclip.train.checkpoint import (
    EVAL_RESULTS,
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    load_trainer_tensors,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from growclip.train.config import TrainConfig
from growclip.train.distributed import (
    SINGLE,
    World,
    gather_objects,
    init_world,
    mean_over_ranks,
    process_device,
    sync_flags,
)
from growclip.train.faults import NonFiniteError, Preempted, preemption_signals, stop_requested
from growclip.train.inputs import RunInputs, build_inputs
from growclip.train.metrics import MetricsLog
from growclip.train.optim import constant_lr, make_optimizer, warmup_cosine
from growclip.train.pace import Pace, PaceWindow
from growclip.train.run_folder import RunFolder
from growclip.train.state import (
    rng_state,
    schedule_at,
    schedule_state,
    set_rng_state,
    set_schedule_state,
)
from growclip.train.step import train_step

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: CLIP  # trained, in eval mode
    checkpoint: Path
    steps: int
    samples: int
    losses: list[float]  # this invocation's steps (a resumed run: those after the checkpoint)
    eval: EvalResults | None  # the final evaluation; None on the ranks of a torchrun job but 0
    skipped: dict[str, int]


def total_steps(config: TrainConfig, sources: PairSources, world: World = SINGLE) -> int:
    step_samples = config.step_samples(world.size)
    if config.samples:
        return config.samples // step_samples
    records = sources.count()
    if records is None:
        raise DataError("the number of samples in remote shards is unknown: give --samples")
    return max(1, int(records * config.epochs) // step_samples)


class Trainer:
    """One run: model, optimizer, schedule, data stream and logs; steps, evaluates, saves, resumes."""

    def __init__(self, config: TrainConfig, model: CLIP, inputs: RunInputs, steps: int, log: MetricsLog | None,
                 base_step: int = 0, run_state: Callable[[], dict[str, Any]] | None = None,
                 warmup: int | None = None, data_seed: int | None = None, proxy: bool = False,
                 world: World = SINGLE) -> None:
        """`base_step`: steps before this schedule in a longer run (a stream's earlier chunks), so that
        logs and checkpoint names count globally; `run_state`: more JSON for every checkpoint;
        `warmup`: warm-up steps of this schedule (default `config.warmup`); `data_seed`: the shuffle
        (default `config.seed`); `proxy`: a growth search's short proxy training, at the peak
        learning rate throughout, with no logs, evaluations or checkpoints (`log` may be None);
        `world`: the processes of a torchrun job (DDP; rank 0 logs, evaluates and writes)."""
        self.config, self.model, self.inputs, self.steps, self.log = config, model, inputs, steps, log
        self.base_step, self.run_state, self.proxy, self.world = base_step, run_state, proxy, world
        model.set_grad_checkpointing(config.grad_checkpointing)
        device = next(model.parameters()).device
        wrapped = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
                   if world.distributed else model)
        # compiled anew for each Trainer, so for each architecture a growth step makes
        self.forward = torch.compile(wrapped) if config.compile and not proxy else wrapped
        self.scaler = grad_scaler(device, config.precision)
        self.output = Path(config.output)
        self.optimizer = make_optimizer(model, config.lr, config.wd, (config.beta1, config.beta2), config.eps)
        self.scheduler = (constant_lr(self.optimizer) if proxy else
                          warmup_cosine(self.optimizer, config.warmup if warmup is None else warmup, steps))
        self.stream = TrainStream(inputs.sources, inputs.tokenizer, inputs.transform, config.batch_size,
                                  config.seed if data_seed is None else data_seed, config.workers,
                                  rank=world.rank, world=world.size, pin_memory=device.type == "cuda")
        self.flops_per_sample = train_flops_per_sample(model.config)
        check_fits(model.config, config.process_batch, device, config.grad_checkpointing)
        self.step_samples = config.step_samples(world.size)
        self.step = 0
        self.position = self.stream.state_dict()  # the data position at the end of `self.step`
        self.saved_step = 0  # nothing worth saving before the first step
        self.saved_at = time.monotonic()
        self.losses: list[float] = []
        self.nonfinite_steps = 0  # skipped steps with a non-finite loss or gradient, this invocation
        self.nonfinite_in_a_row = 0
        self.pace = PaceWindow(self.step_samples, config.workers, warn=world.is_main)  # this invocation's

    def restore(self, checkpoint: Path, state: dict[str, Any]) -> None:
        """Continue from a checkpoint written by `save` (model weights are already loaded), on as many
        processes as wrote it or on another number: then the rest of the epoch is dealt anew and the
        step count and schedule follow the new global batch."""
        tensors = load_trainer_tensors(checkpoint)
        try:
            load_optimizer_tensors(self.optimizer, self.model, tensors)
            set_rng_state(state["rng"], tensors)
            if state.get("grad_scaler"):
                self.scaler.load_state_dict(state["grad_scaler"])
            positions = state["data"]["ranks"] if "ranks" in state["data"] else [state["data"]]
            self.stream.load_state_dict(self.stream.adopt(positions))
            if len(positions) == self.world.size:
                set_schedule_state(self.optimizer, self.scheduler, state["schedule"])
                self.step = state["step"]
            else:
                self.step = state["step"] * len(positions) // self.world.size
                schedule_at(self.optimizer, self.scheduler, self.step)
                logger.info("saved by %d processes, resumed on %d: step %d is now step %d", len(positions),
                            self.world.size, state["step"], self.step)
        except KeyError as err:
            raise CheckpointError(f"{checkpoint}: training state lacks {err}; not a resumable checkpoint") from None
        self.saved_step = self.step
        self.position = self.stream.state_dict()

    @property
    def global_step(self) -> int:
        return self.base_step + self.step

    def _where(self) -> dict[str, int]:
        return {"step": self.global_step, "samples": self.global_step * self.step_samples}

    def save(self) -> Path:
        """Every process calls it (the data positions are gathered); rank 0 writes."""
        positions = gather_objects(self.position, self.world)
        path = checkpoint_path(self.output, self.global_step)
        self.saved_at = time.monotonic()
        if not self.world.is_main:
            self.saved_step = self.step
            return path
        rng_json, rng_tensors = rng_state()
        data = {"ranks": positions} if self.world.distributed else self.position
        state = {"step": self.step, "global_step": self.global_step, "samples": self._where()["samples"],
                 "processes": self.world.size, "data": data,
                 "schedule": schedule_state(self.optimizer, self.scheduler), "rng": rng_json,
                 "grad_scaler": self.scaler.state_dict(),
                 "train_config": self.config.to_dict(), **(self.run_state() if self.run_state else {})}
        trainer = optimizer_tensors(self.optimizer, self.model) | rng_tensors
        save_checkpoint(path, self.model, self.inputs.tokenizer, state, trainer)
        prune_checkpoints(self.output, self.config.keep_checkpoints)
        self.saved_step = self.step  # only once it is written: a failed save leaves the step unsaved
        return path

    def evaluate(self, final: bool = False) -> EvalResults:
        """Logged under "eval"; the final record also carries the run's skip counts."""
        results = evaluate_sets(self.model, self.inputs.tokenizer, self.inputs.evals, self.config.precision)
        record = {**self._where(), **results.summary}
        if final:
            record |= {"final": True, **self._skip_fields()}
        if self.log is not None:
            self.log.write(record, "eval")
        return results

    def _skip_fields(self) -> dict[str, Any]:
        skipped = self.stream.total_skipped
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
        config = self.config
        batches = iter(self.stream)
        report = not self.proxy and self.world.is_main
        progress = tqdm(initial=self.step, total=self.steps, disable=not (config.progress and report), desc="train",
                        unit="step", mininterval=0.1 if sys.stderr.isatty() else 60)  # a log file: once a minute
        self.pace.open()
        while self.step < self.steps:
            micro_batches, waited = self._fetch(batches)
            lr = self.scheduler.get_last_lr()[0]
            loss = train_step(self.forward, micro_batches, self.optimizer, self.scheduler, config.precision,
                              config.grad_clip_norm, self.world.distributed, self.scaler)
            self.step, self.position = self.step + 1, self.stream.state_dict()
            self._count_nonfinite(loss)
            self.losses.append(loss)
            self.pace.stepped(waited)
            progress.update()
            if not self.proxy and (self.step % config.log_every == 0 or self.step == self.steps):
                pace = self.pace.close()
                self._log_step(mean_over_ranks(loss, self.world), lr, pace)
                progress.set_postfix(loss=f"{loss:.3f}", samples_s=f"{pace.samples_per_s:.0f}",
                                     refresh=False)  # redrawn by update()
            if report and config.eval_every and self.step % config.eval_every == 0 and self.step < self.steps:
                self.evaluate()
            save_due, stop = sync_flags([self._save_due(), stop_requested()], self.world)
            if not self.proxy and self.step < self.steps and save_due:
                self.save()
            if stop:
                raise Preempted(stop_requested() or signal.SIGTERM)
        progress.close()

    def _fetch(self, batches: Iterator[Batch]) -> tuple[list[Batch], float]:
        """The step's micro-batches, and the seconds spent waiting for them."""
        start = time.perf_counter()
        micro_batches = [next(batches) for _ in range(self.config.accum_freq)]
        return micro_batches, time.perf_counter() - start

    def _save_due(self) -> bool:
        every, minutes = self.config.save_every, self.config.save_every_minutes
        return bool(every and self.step % every == 0) or bool(
            minutes and time.monotonic() - self.saved_at >= 60 * minutes)

    def _count_nonfinite(self, loss: float) -> None:
        """Non-finite steps were skipped (no update); too many in a row stop the run."""
        if math.isfinite(loss):
            self.nonfinite_in_a_row = 0
            return
        self.nonfinite_steps += 1
        self.nonfinite_in_a_row += 1
        logger.warning("step %d: non-finite loss or gradients, step skipped", self.global_step)
        if self.nonfinite_in_a_row >= self.config.max_nonfinite_steps:
            raise NonFiniteError(f"step {self.global_step}: loss or gradients non-finite for "
                                 f"{self.nonfinite_in_a_row} steps in a row; the run stops and keeps its last "
                                 f"checkpoint (step {self.base_step + self.saved_step}); lower --lr or check the data")

    def _log_step(self, loss: float, lr: float, pace: Pace) -> None:
        if self.log is None:
            return
        flops = pace.samples_per_s * self.flops_per_sample
        peak = peak_flops(next(self.model.parameters()).device, self.config.precision) * self.world.size
        record = {**self._where(), "epoch": self.position["epoch"], "loss": loss, "lr": lr,
                  "logit_scale": self.model.scale().item(), "samples_per_s": pace.samples_per_s,
                  "tflops_per_s": flops / 1e12, "utilisation": flops / peak, "data_wait": pace.data_wait,
                  "nonfinite_steps": self.nonfinite_steps}
        self.log.write(record | self._skip_fields())


def metrics_log(output: Path, config: TrainConfig, resume_step: int | None, world: World
                ) -> AbstractContextManager[MetricsLog | None]:
    """The run's metrics log on rank 0; nothing on the other ranks."""
    if not world.is_main:
        return nullcontext()
    return MetricsLog(output / "metrics.jsonl", config.report_to == "tensorboard", resume_step=resume_step)


@dataclass(frozen=True)
class RunStart:
    """Where a run's process trains and the architecture the run starts from."""

    world: World
    device: torch.device
    model: ModelConfig


def start_run(config: TrainConfig) -> RunStart:
    """What a fixed and a growing run do first, before their run folder is claimed: the device (one
    per process under torchrun), the start architecture (a misspelt --model fails before anything
    is written), the seeds, and a warning where the precision is slow here."""
    resolved = resolve_device(config.device)
    world = init_world(resolved)
    start = RunStart(world, process_device(resolved, world), load_config(config.model))
    seed_everything(config.seed)
    warn_if_slow_precision(start.device, config.precision)
    return start


def resume_checkpoint(config: TrainConfig) -> Path | None:
    """The checkpoint `--resume` names: None for a new run (also for `latest` with none yet)."""
    if not config.resume:
        return None
    if config.resume == "latest":
        try:
            return resolve_checkpoint(config.output)
        except CheckpointError:
            logger.warning("--resume latest: no checkpoint in %s yet, starting a new run", config.output)
            return None
    return resolve_checkpoint(config.resume)


def train(config: TrainConfig) -> TrainResult:
    """Train a fixed architecture on the embedded corpus or `config.train_data`, save, evaluate.
    Under torchrun every process runs this; rank 0 owns the run folder, writes and evaluates."""
    if config.is_stream:  # it would train one fixed model on the corpus, silently
        raise ValueError("this config is a growing run (chunks or watch): run it with growclip.train_stream(config)")
    start = start_run(config)
    world, device, model_config = start.world, start.device, start.model
    with RunFolder(config, owner=world.is_main) as folder:
        checkpoint = resume_checkpoint(config)
        if checkpoint is not None:
            model, tokenizer, state = load_checkpoint(checkpoint, device)
            config.check_resume(state.get("train_config", {}), checkpoint)
            inputs = build_inputs(config, model.config, tokenizer)
            if "step" not in state:  # weights only (an imported model): a new run starts from them
                checkpoint, state = None, None
        else:
            inputs = build_inputs(config, model_config)
            model, state = create_model(model_config, seed=config.seed).to(device), None
        if inputs.evals.skipped:
            logger.info("validation data: %s", format_skipped(inputs.evals.skipped))
        steps = total_steps(config, inputs.sources, world)
        if config.warmup >= steps and world.is_main:
            logger.warning("--warmup %d is not shorter than the run's %d steps: the learning rate never reaches "
                           "--lr %g; lower --warmup", config.warmup, steps, config.lr)
        folder.start()
        return _train_fixed(config, model, inputs, steps, checkpoint, state, world)


def _train_fixed(config: TrainConfig, model: CLIP, inputs: RunInputs, steps: int, checkpoint: Path | None,
                 state: dict[str, Any] | None, world: World) -> TrainResult:
    output = Path(config.output)
    with metrics_log(output, config, state["step"] if state else None, world) as log:
        trainer = Trainer(config, model.train(), inputs, steps, log, world=world)
        if checkpoint is not None:
            trainer.restore(checkpoint, state)
            logger.info("resumed from %s at step %d of %d", checkpoint, trainer.step, steps)
        trainer.run()
        path = trainer.save() if trainer.saved_step < trainer.step else checkpoint_path(output, trainer.step)
        results = trainer.evaluate(final=True) if world.is_main else None
        skipped = dict(trainer.stream.total_skipped)
    if results is not None and results.measured:
        (output / EVAL_RESULTS).write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    return TrainResult(model.eval(), path, trainer.step, trainer.step * trainer.step_samples, trainer.losses, results,
                       skipped)


__all__ = ["TrainConfig", "TrainResult", "Trainer", "train"]
