"""Symmetric InfoNCE, the CLIP objective, on one process or gathered over several."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class GatherWithGrad(torch.autograd.Function):
    """(B, E) on each rank -> (B x world, E), rank order, on every rank. Backward: each rank's loss
    reads every rank's features, so the gradients of all ranks' losses are summed (all-reduce) and
    each rank keeps the slice of its own rows."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, features: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(features) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, features.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad.chunk(dist.get_world_size())[dist.get_rank()]


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
              distributed: bool = False) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy; pair i is the positive of row i.

    image_features, text_features: (B, E) normalised; computed in float32 whatever the autocast.
    `distributed`: each process holds B rows of a global batch of B x world; features of every rank
    are gathered *with* their gradient and each rank scores its own rows against all of them (open_clip's
    `--local-loss --gather-with-grad`): memory grows linearly with the global batch, and DDP's gradient
    average equals the gradient of the loss on the whole batch in one process.
    """
    images, texts, scale = image_features.float(), text_features.float(), logit_scale.float()
    labels = torch.arange(images.shape[0], device=images.device)
    if not (distributed and dist.is_initialized() and dist.get_world_size() > 1):
        logits = scale * images @ texts.t()  # (B, B)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    all_images, all_texts = GatherWithGrad.apply(images), GatherWithGrad.apply(texts)  # (B x world, E)
    labels = labels + dist.get_rank() * images.shape[0]
    logits_per_image = scale * images @ all_texts.t()  # (B, B x world)
    logits_per_text = scale * texts @ all_images.t()
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
