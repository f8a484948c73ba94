"""What growth transforms: an architecture, its weights, and the AdamW moments of those weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.factory import create_model
from growclip.model.moments import Moments, load_named_moments, named_moments


@dataclass
class GrowthState:
    """Growth works on named tensors, not modules, so every operator is a pure function of names.

    `weights` is the full state dict (buffers too); `moments` may be empty (no optimizer yet);
    `step` is the optimizer step count; brand-new parameters have no moments (they start afresh).
    """

    config: ModelConfig
    weights: dict[str, torch.Tensor]
    moments: Moments = field(default_factory=dict)
    step: int = 0

    @classmethod
    def capture(cls, model: CLIP, optimizer: torch.optim.Optimizer | None = None) -> GrowthState:
        return cls.of(model, named_moments(optimizer, model) if optimizer is not None else {})

    @classmethod
    def of(cls, model: CLIP, moments: Moments) -> GrowthState:
        """A copy of `model`'s weights, with `moments` for them."""
        step = max((int(m["step"]) for m in moments.values() if "step" in m), default=0)
        return cls(model.config, {n: t.detach().clone() for n, t in model.state_dict().items()}, moments, step)

    def build_model(self) -> CLIP:
        model = create_model(self.config)
        model.load_state_dict(self.weights)
        return model

    def load_moments(self, optimizer: torch.optim.Optimizer, model: CLIP) -> None:
        load_named_moments(optimizer, model, self.moments)
