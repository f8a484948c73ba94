"""What growth transforms: an architecture, its weights, and the AdamW moments of those weights.

Optimizer moments are keyed by parameter name ({"optimizer.exp_avg.<name>": t} in checkpoints),
so that they can follow their tensors through growth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.factory import create_model

OPTIMIZER_PREFIX = "optimizer"
Moments = dict[str, dict[str, torch.Tensor]]  # parameter name -> {"exp_avg", "exp_avg_sq", "step"}


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
        return cls.from_tensors(model, optimizer_tensors(optimizer, model) if optimizer is not None else {})

    @classmethod
    def from_tensors(cls, model: CLIP, trainer: dict[str, torch.Tensor]) -> GrowthState:
        """From a model and its optimizer tensors in the checkpoint layout (`trainer.safetensors`)."""
        moments = split_moments(trainer)
        step = max((int(m["step"]) for m in moments.values() if "step" in m), default=0)
        return cls(model.config, {n: t.detach().clone() for n, t in model.state_dict().items()}, moments, step)

    def build_model(self) -> CLIP:
        model = create_model(self.config)
        model.load_state_dict(self.weights)
        return model

    def load_moments(self, optimizer: torch.optim.Optimizer, model: CLIP) -> None:
        load_optimizer_tensors(optimizer, model, self.join_moments())

    def join_moments(self) -> dict[str, torch.Tensor]:
        """The moments in the checkpoint layout, {"optimizer.exp_avg.<name>": t}."""
        return {f"{OPTIMIZER_PREFIX}.{stat}.{name}": t for name, stats in self.moments.items()
                for stat, t in stats.items()}


def optimizer_tensors(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, torch.Tensor]:
    """{"optimizer.<stat>.<parameter name>": tensor}, e.g. optimizer.exp_avg.text_head.proj.weight."""
    names = {id(p): name for name, p in model.named_parameters()}
    return {f"{OPTIMIZER_PREFIX}.{stat}.{names[id(p)]}": value
            for group in optimizer.param_groups for p in group["params"]
            for stat, value in optimizer.state.get(p, {}).items()}


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, model: nn.Module,
                           tensors: dict[str, torch.Tensor]) -> None:
    """Parameters without saved moments (new ones) start with none, as if never stepped."""
    moments = split_moments(tensors)
    for name, p in model.named_parameters():
        if name in moments:  # copies: the optimizer updates its state in place
            optimizer.state[p] = {stat: value.to(p.device, copy=True) if stat != "step" else value.clone()
                                  for stat, value in moments[name].items()}


def split_moments(tensors: dict[str, torch.Tensor]) -> Moments:
    """{"optimizer.exp_avg.<name>": t} (the checkpoint layout) -> {name: {"exp_avg": t}}."""
    moments: Moments = {}
    for key, value in tensors.items():
        if key.startswith(OPTIMIZER_PREFIX + "."):
            stat, name = key[len(OPTIMIZER_PREFIX) + 1 :].split(".", 1)
            moments.setdefault(name, {})[stat] = value
    return moments
