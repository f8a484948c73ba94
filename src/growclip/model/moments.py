"""AdamW moments keyed by parameter name, so that they can follow their tensors through growth
and into checkpoints ({"exp_avg.<parameter name>": tensor})."""

from __future__ import annotations

import torch
from torch import nn

Moments = dict[str, dict[str, torch.Tensor]]  # parameter name -> {"exp_avg", "exp_avg_sq", "step"}


def named_moments(optimizer: torch.optim.Optimizer, model: nn.Module) -> Moments:
    names = {id(p): name for name, p in model.named_parameters()}
    return {names[id(p)]: dict(optimizer.state[p]) for group in optimizer.param_groups for p in group["params"]
            if optimizer.state.get(p)}


def load_named_moments(optimizer: torch.optim.Optimizer, model: nn.Module, moments: Moments) -> None:
    """Parameters without saved moments (new ones) start with none, as if never stepped."""
    for name, p in model.named_parameters():
        if name in moments:  # copies: the optimizer updates its state in place
            optimizer.state[p] = {stat: value.to(p.device, copy=True) if stat != "step" else value.clone()
                                  for stat, value in moments[name].items()}


def flat_moments(moments: Moments) -> dict[str, torch.Tensor]:
    """{name: {"exp_avg": t}} -> {"exp_avg.<name>": t}, the layout files keep."""
    return {f"{stat}.{name}": t for name, stats in moments.items() for stat, t in stats.items()}


def nested_moments(tensors: dict[str, torch.Tensor]) -> Moments:
    """{"exp_avg.<name>": t} -> {name: {"exp_avg": t}}."""
    moments: Moments = {}
    for key, value in tensors.items():
        stat, name = key.split(".", 1)
        moments.setdefault(name, {})[stat] = value
    return moments
