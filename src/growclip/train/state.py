"""The resumable state of a run besides the model: optimizer moments, schedule, RNGs, data position.

Tensors go to safetensors and everything else to JSON, so resuming never unpickles anything.
Optimizer moments are keyed by parameter name (see `growth.state`), so they follow growth.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

RNG_PREFIX = "rng"


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


def schedule_at(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> None:
    """The schedule as it stands after `step` steps: a run resumed on another number of processes
    counts its steps in another global batch."""
    lrs = [base * factor(step) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    scheduler.load_state_dict({**scheduler.state_dict(), "last_epoch": step, "_last_lr": lrs})
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
