"""The owners of a run's state besides the model, each with `state_dict()` / `load_state_dict()`
for the checkpointer: optimizer moments, learning-rate schedule, RNGs, data positions.

Tensors stay tensors (the checkpointer puts them in safetensors) and the rest is JSON, so resuming
never unpickles anything. Optimizer moments are keyed by parameter name, so they follow growth.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn
from torch.amp import GradScaler
from torch.optim.lr_scheduler import LambdaLR

from growclip.checkpoint import StateDict
from growclip.model.moments import flat_moments, load_named_moments, named_moments, nested_moments


class OptimizerMoments:
    """{"exp_avg.<parameter name>": tensor, ...}: the moments by name, not by parameter position."""

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
        self.optimizer, self.model = optimizer, model

    def state_dict(self) -> StateDict:
        return flat_moments(named_moments(self.optimizer, self.model))

    def load_state_dict(self, state: StateDict) -> None:
        load_named_moments(self.optimizer, self.model, nested_moments(state))


class LRSchedule:
    """The scheduler's position and the learning rates it set."""

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler: LambdaLR) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler

    def state_dict(self) -> StateDict:
        return {"scheduler": self.scheduler.state_dict(), "lr": [group["lr"] for group in self.optimizer.param_groups]}

    def load_state_dict(self, state: StateDict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        for group, lr in zip(self.optimizer.param_groups, state["lr"]):
            group["lr"] = lr

    def move_to(self, step: int) -> None:
        """The schedule as it stands after `step` steps: a run resumed on another number of processes
        counts its steps in another global batch."""
        scheduler = self.scheduler
        lrs = [base * factor(step) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
        scheduler.load_state_dict({**scheduler.state_dict(), "last_epoch": step, "_last_lr": lrs})
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr


class LossScaler:
    """fp16's loss scale. An empty state (a run in fp32 or bf16, whose scaler is off) changes nothing."""

    def __init__(self, scaler: GradScaler) -> None:
        self.scaler = scaler

    def state_dict(self) -> StateDict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: StateDict) -> None:
        if state:
            self.scaler.load_state_dict(state)


class GlobalRNG:
    """The Python, NumPy and torch global generators (and CUDA's, where there is one)."""

    def state_dict(self) -> StateDict:
        version, internal, gauss = random.getstate()
        name, keys, position, has_gauss, cached = np.random.get_state()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"python": [version, list(internal), gauss], "numpy": [name, keys.tolist(), position, has_gauss, cached],
                "torch": torch.get_rng_state(), **{f"cuda.{i}": s for i, s in enumerate(cuda)}}

    def load_state_dict(self, state: StateDict) -> None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        cuda = [state[k] for k in sorted(state) if k.startswith("cuda.")]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)


class DataPositions:
    """Every process's position in the data (`TrainBatches.state_dict()`), rank by rank."""

    def __init__(self, ranks: list[StateDict] | None = None) -> None:
        self.ranks = ranks or []

    def state_dict(self) -> StateDict:
        return {"ranks": self.ranks}

    def load_state_dict(self, state: StateDict) -> None:
        self.ranks = state.get("ranks", [state])  # [state]: one process's position, as saved before 2026-12
