"""One optimizer step, with exact contrastive gradient accumulation; `model` may be DDP-wrapped."""

from __future__ import annotations

import math
import re
import warnings
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn
from torch.amp import GradScaler
from torch.nn.parallel import DistributedDataParallel

from growclip.data.stream import Batch
from growclip.model.loss import clip_loss
from growclip.runtime import autocast


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
