"""One optimizer step, with exact contrastive gradient accumulation."""

from __future__ import annotations

import math

import torch

from growclip.model.clip import CLIP
from growclip.model.loss import clip_loss
from growclip.runtime import autocast

Batch = tuple[torch.Tensor, torch.Tensor]  # (B, 3, S, S) images, (B, L) tokens


def _accumulate(model: CLIP, micro_batches: list[Batch], device: torch.device, precision: str) -> float:
    """Backward of the loss over all micro-batches together, one micro-batch holding a graph at a time.

    Features of every micro-batch are first computed without a graph; then each micro-batch is
    re-run with one, its features swapped into the cached ones, and the full loss back-propagated.
    The gradients sum to the gradient of one big batch (open_clip's --accum-freq). The logit scale
    gets its gradient from the first pass only, so it is not counted once per micro-batch.
    """
    with torch.no_grad(), autocast(device, precision):
        cached = [model(images, tokens)[:2] for images, tokens in micro_batches]
    loss_value = 0.0
    for index, (images, tokens) in enumerate(micro_batches):
        with autocast(device, precision):
            image_features, text_features, scale = model(images, tokens)
        images_all = torch.cat([image_features if i == index else c[0] for i, c in enumerate(cached)])
        texts_all = torch.cat([text_features if i == index else c[1] for i, c in enumerate(cached)])
        loss = clip_loss(images_all, texts_all, scale if index == 0 else scale.detach())
        loss.backward()
        loss_value = loss.item()
    return loss_value


def train_step(model: CLIP, micro_batches: list[Batch], optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, precision: str = "fp32",
               grad_clip_norm: float | None = None) -> float:
    """-> the contrastive loss of the step's whole batch (before the update), or NaN when the loss
    or the gradients were not finite: then the weights and moments are left as they were (the
    schedule still advances, so that it stays in step with the data)."""
    device = next(model.parameters()).device
    micro_batches = [(images.to(device), tokens.to(device)) for images, tokens in micro_batches]
    optimizer.zero_grad(set_to_none=True)
    if len(micro_batches) == 1:
        images, tokens = micro_batches[0]
        with autocast(device, precision):
            loss = clip_loss(*model(images, tokens))
        loss.backward()
        loss_value = loss.item()
    else:
        loss_value = _accumulate(model, micro_batches, device, precision)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf if grad_clip_norm is None else grad_clip_norm)
    finite = math.isfinite(loss_value) and bool(torch.isfinite(norm))
    if finite:
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return loss_value if finite else math.nan
