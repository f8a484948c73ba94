"""One optimizer step, with exact contrastive gradient accumulation (`train_step`; `model` may be
DDP-wrapped), and the `Stepper` that training and a growth search's proxy training both step with."""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn
from torch.amp import GradScaler
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR

from growclip.data.batches import Batch, TrainBatches
from growclip.model.clip import CLIP
from growclip.model.loss import clip_loss
from growclip.model.memory import check_fits
from growclip.runtime import autocast, grad_scaler
from growclip.train.distributed import World
from growclip.train.inputs import RunInputs
from growclip.train.optim import make_optimizer
from growclip.train.sections import OptimConfig

logger = logging.getLogger(__name__)


def _accumulate(model: nn.Module, micro_batches: list[Batch], device: torch.device, precision: str,
                distributed: bool, scaler: GradScaler) -> float:
    """Backward of the loss over all micro-batches together, one micro-batch holding a graph at a time.

    Features of every micro-batch are first computed without a graph; then each micro-batch is
    re-run with one, its features swapped into the cached ones, and the full loss back-propagated.
    The gradients sum to the gradient of one big batch (open_clip's --accum-freq). The logit scale
    gets its gradient from the last pass only, so it is not counted once per micro-batch; under DDP
    only that last backward all-reduces (`no_sync` before it).
    """
    with torch.no_grad(), autocast(device, precision):
        cached = [model(images, tokens)[:2] for images, tokens in micro_batches]
    loss_value, last = 0.0, len(micro_batches) - 1
    for index, (images, tokens) in enumerate(micro_batches):
        with _no_sync(model, index < last), autocast(device, precision):
            image_features, text_features, scale = model(images, tokens)
            images_all = torch.cat([image_features if i == index else c[0] for i, c in enumerate(cached)])
            texts_all = torch.cat([text_features if i == index else c[1] for i, c in enumerate(cached)])
            loss = clip_loss(images_all, texts_all, scale if index == last else scale.detach(), distributed)
            scaler.scale(loss).backward()
        loss_value = loss.item()
    return loss_value


def _no_sync(model: nn.Module, skip: bool) -> AbstractContextManager:
    model = getattr(model, "_orig_mod", model)  # under torch.compile
    return model.no_sync() if skip and isinstance(model, DistributedDataParallel) else nullcontext()


def train_step(model: nn.Module, micro_batches: list[Batch], optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, precision: str = "fp32",
               grad_clip_norm: float | None = None, distributed: bool = False,
               scaler: GradScaler | None = None) -> float:
    """-> the contrastive loss of the step's whole batch (before the update), or NaN when the loss
    or the gradients were not finite: then the weights and moments are left as they were (the
    schedule still advances, so that it stays in step with the data). With fp16's enabled `scaler`,
    gradients that overflow at the current loss scale skip the update and lower the scale, as
    `GradScaler` does; that is not a non-finite step while the loss itself is finite."""
    device = next(model.parameters()).device
    scaler = scaler or GradScaler(device.type, enabled=False)
    micro_batches = [(images.to(device, non_blocking=True), tokens.to(device, non_blocking=True))
                     for images, tokens in micro_batches]
    optimizer.zero_grad(set_to_none=True)
    if len(micro_batches) == 1:
        images, tokens = micro_batches[0]
        with autocast(device, precision):
            loss = clip_loss(*model(images, tokens), distributed=distributed)
        scaler.scale(loss).backward()
        loss_value = loss.item()
    else:
        loss_value = _accumulate(model, micro_batches, device, precision, distributed, scaler)
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf if grad_clip_norm is None else grad_clip_norm)
    finite = math.isfinite(loss_value) and (scaler.is_enabled() or bool(torch.isfinite(norm)))
    if finite:
        scaler.step(optimizer)  # with the scaler on, skipped by itself when the gradients overflowed
    else:
        optimizer.zero_grad(set_to_none=True)
    scaler.update()
    with warnings.catch_warnings():  # a skipped update still advances the schedule, on purpose
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
        scheduler.step()
    return loss_value if finite else math.nan


class Stepper:
    """A model set up to train: wrapped for its processes (DDP) and, with `compile`, compiled anew
    (so for each architecture growth makes); its optimizer, schedule, loss scaler and training batches;
    stepped one optimizer step at a time, counting non-finite (skipped) steps."""

    def __init__(self, optim: OptimConfig, model: CLIP, inputs: RunInputs, schedule: Callable[[torch.optim.Optimizer],
                 LambdaLR], data_seed: int, world: World, workers: int = 0, compile: bool = False) -> None:
        """`workers`: DataLoader processes reading the data; `compile`: torch.compile the model."""
        self.optim, self.world = optim, world
        model.set_grad_checkpointing(optim.grad_checkpointing)
        device = next(model.parameters()).device
        check_fits(model.config, optim.process_batch, device, optim.grad_checkpointing)
        wrapped = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
                   if world.distributed else model)
        self.forward = torch.compile(wrapped) if compile else wrapped
        self.scaler = grad_scaler(device, optim.precision)
        self.optimizer = make_optimizer(model, optim.lr, optim.wd, (optim.beta1, optim.beta2), optim.eps)
        self.scheduler = schedule(self.optimizer)
        self.batches = TrainBatches(inputs.sources, inputs.tokenizer, inputs.transform, optim.batch_size, data_seed,
                                  workers, rank=world.rank, world=world.size, pin_memory=device.type == "cuda")
        self._iterator: Iterator[Batch] | None = None  # opened at the first step, after any resume
        self.nonfinite_steps = 0  # this invocation's
        self.nonfinite_in_a_row = 0

    def step(self) -> tuple[float, float]:
        """One optimizer step -> (its loss, NaN when skipped as non-finite; seconds spent waiting for
        its micro-batches)."""
        if self._iterator is None:
            self._iterator = iter(self.batches)
        start = time.perf_counter()
        micro_batches = [next(self._iterator) for _ in range(self.optim.accum_freq)]
        waited = time.perf_counter() - start
        loss = train_step(self.forward, micro_batches, self.optimizer, self.scheduler, self.optim.precision,
                          self.optim.grad_clip_norm, self.world.distributed, self.scaler)
        finite = math.isfinite(loss)
        self.nonfinite_steps += not finite
        self.nonfinite_in_a_row = 0 if finite else self.nonfinite_in_a_row + 1
        return loss, waited

    @property
    def diverged(self) -> bool:
        """Too many non-finite steps in a row: the run stops (`--max-nonfinite-steps`)."""
        return self.nonfinite_in_a_row >= self.optim.max_nonfinite_steps
