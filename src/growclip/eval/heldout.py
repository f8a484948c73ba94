"""Held-out contrastive loss: how a growth search scores a contender on pairs it never trained on."""

from __future__ import annotations

from statistics import mean

import torch

from growclip.data.evalsets import RetrievalSet
from growclip.data.tokenizer import Tokenizer
from growclip.data.transforms import normalize
from growclip.eval.encode import encode_texts
from growclip.model.clip import CLIP
from growclip.model.loss import clip_loss
from growclip.runtime import autocast


@torch.no_grad()
def heldout_loss(model: CLIP, tokenizer: Tokenizer, heldout: RetrievalSet, precision: str, batch: int = 128) -> float:
    """Mean contrastive loss over batches of held-out pairs (the last partial batch joins the previous)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    images = torch.from_numpy(heldout.images)
    losses = []
    starts = list(range(0, len(images) - batch + 1, batch)) or [0]
    for index, start in enumerate(starts):
        stop = len(images) if index == len(starts) - 1 else start + batch
        with autocast(device, precision):
            image_features = model.encode_image(normalize(images[start:stop]).to(device))
        text_features = encode_texts(model, tokenizer, heldout.texts[start:stop], precision=precision).to(device)
        losses.append(clip_loss(image_features.float(), text_features, model.scale()).item())
    model.train(was_training)
    return mean(losses)


def new_and_old_loss(model: CLIP, tokenizer: Tokenizer, heldouts: list[RetrievalSet], precision: str
                     ) -> tuple[float, float | None]:
    """Loss on the newest chunk's held-out pairs, and the mean over the older chunks' (None if none)."""
    losses = [heldout_loss(model, tokenizer, heldout, precision) for heldout in heldouts]
    return losses[-1], mean(losses[:-1]) if len(losses) > 1 else None
