"""The resumable state of a run besides the model: optimizer moments, schedule, RNGs, data position.

Tensors go to safetensors and everything else to JSON, so resuming never unpickles anything.
Optimizer moments are keyed by parameter name, so they can follow their tensors through growth.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

OPTIMIZER_PREFIX = "optimizer"
RNG_PREFIX = "rng"


def optimizer_tensors(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, torch.Tensor]:
    """{"optimizer.<stat>.<parameter name>": tensor}, e.g. optimizer.exp_avg.text_head.weight."""
    names = {id(p): name for name, p in model.named_parameters()}
    return {f"{OPTIMIZER_PREFIX}.{stat}.{names[id(p)]}": value
            for group in optimizer.param_groups for p in group["params"]
            for stat, value in optimizer.state.get(p, {}).items()}


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, model: nn.Module,
                           tensors: dict[str, torch.Tensor]) -> None:
    """Parameters without saved moments (new ones) start with none, as if never stepped."""
    moments: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIMIZER_PREFIX + "."):
            stat, name = key[len(OPTIMIZER_PREFIX) + 1 :].split(".", 1)
            moments.setdefault(name, {})[stat] = value
    for name, p in model.named_parameters():
        if name in moments:  # copies: the optimizer updates its state in place
            optimizer.state[p] = {stat: value.to(p.device, copy=True) if stat != "step" else value.clone()
                                  for stat, value in moments[name].items()}


def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON part, tensor part) of the Python, NumPy and torch global generators."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    tensors = {f"{RNG_PREFIX}.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors |= {f"{RNG_PREFIX}.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return {"python": [version, list(internal), gauss],
            "numpy": [name, keys.tolist(), position, has_gauss, cached]}, tensors


def set_rng_state(state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(tensors[f"{RNG_PREFIX}.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith(f"{RNG_PREFIX}.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def schedule_state(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
                   ) -> dict[str, Any]:
    return {"scheduler": scheduler.state_dict(), "lr": [group["lr"] for group in optimizer.param_groups]}


def set_schedule_state(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                       state: dict[str, Any]) -> None:
    scheduler.load_state_dict(state["scheduler"])
    for group, lr in zip(optimizer.param_groups, state["lr"]):
        group["lr"] = lr
