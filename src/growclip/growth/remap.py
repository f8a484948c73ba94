"""Re-indexing tensors along the dimensions growth widens, for weights and AdamW moments alike.

Which dimension of which tensor lives in which space (residual, hidden, qkv, a stem stage, the
embedding), as *out* or *in*, the model's modules declare (`model.axes`). A `DimMap` says, for
each position of a grown space, which old position it copies (-1: a brand-new one).

Function preservation: a copied out position copies the weights; a copied in position divides
them by the number of copies, so the sum over copies reads the old value. New out positions
come from the fresh initialisation (or zero), new in positions are zero, so new units start
silent. Moments follow the gradients these rules imply: an out position with c copies gets 1/c
of the old gradient (the copies share its effect), scaled rows get the inverse scale; the
second moment takes the square.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from growclip.growth.state import GrowthState
from growclip.model.axes import Axes, parameter_axes
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig


@dataclass(frozen=True)
class DimMap:
    index: torch.Tensor  # (new,) old position copied by each new position; -1 = brand new
    scale: torch.Tensor | None = None  # (new,) weight multiplier of out positions (attention query rows)
    fresh_out: bool | torch.Tensor = True  # brand-new out positions fresh, or zero (False); or (new,) per position

    @property
    def copies(self) -> torch.Tensor:
        """(new,) how many new positions copy the same old one (1 for brand-new positions)."""
        valid = self.index >= 0
        counts = torch.bincount(self.index[valid], minlength=int(self.index.max()) + 1 if valid.any() else 0)
        return torch.where(valid, counts[self.index.clamp(min=0)], 1).float()

    @staticmethod
    def extend(old: int, new: int, fresh_out: bool = True) -> DimMap:
        """Keep the old positions, append brand-new ones."""
        return DimMap(torch.cat([torch.arange(old), torch.full((new - old,), -1)]), fresh_out=fresh_out)


@functools.cache
def config_axes(config: ModelConfig) -> dict[str, Axes]:
    """Growth axes of every tensor of a model of `config`, as its modules declare them (built on the
    meta device: no memory, no initialisation)."""
    with torch.device("meta"):
        return parameter_axes(CLIP(config))


def _along(values: torch.Tensor, dim: int, ndim: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[dim] = -1
    return values.view(shape)


def remap(old: torch.Tensor, axes: Axes, maps: dict[str, DimMap], fresh: torch.Tensor,
          stat: str = "weight") -> torch.Tensor:
    """One tensor of the old model -> the grown model's. `stat`: "weight", "exp_avg" or "exp_avg_sq"
    (moments scale with the gradient, to the first or second power); `fresh` is the grown model's
    fresh initialisation of the same tensor."""
    out, factor = old, torch.ones(())
    fresh_mask = zero_mask = torch.zeros((), dtype=torch.bool)
    power = {"weight": 0, "exp_avg": 1, "exp_avg_sq": 2}[stat]
    for dim, (space, kind) in axes.items():
        dim_map = maps.get(space)
        if dim_map is None:
            continue
        out = out.index_select(dim, dim_map.index.clamp(min=0))
        copies = dim_map.copies
        scale = dim_map.scale if dim_map.scale is not None else torch.ones_like(copies)
        if kind == "out":
            step = scale if power == 0 else (1 / (copies * scale)) ** power
        else:
            step = 1 / copies if power == 0 else torch.ones_like(copies)
        factor = factor * _along(step, dim, old.ndim)
        brand_new = dim_map.index < 0
        fresh_rows = brand_new & torch.as_tensor(dim_map.fresh_out) if kind == "out" else torch.zeros_like(brand_new)
        fresh_mask = fresh_mask | _along(fresh_rows, dim, old.ndim)
        zero_mask = zero_mask | _along(brand_new & ~fresh_rows, dim, old.ndim)
    out = out * factor.to(out.dtype)
    if power == 0:
        return torch.where(zero_mask, torch.zeros((), dtype=out.dtype), torch.where(fresh_mask, fresh, out))
    return torch.where(zero_mask | fresh_mask, _new_moment(old, power), out)


def _new_moment(old: torch.Tensor, power: int) -> torch.Tensor:
    """Brand-new positions share their tensor's step count, which has no Adam bias correction left:
    with zero moments their first updates would reach several times the learning rate. They start
    with no first moment and the tensor's mean second moment instead, so their updates ramp up."""
    return torch.zeros((), dtype=old.dtype) if power == 1 else old.mean()


def remap_state(state: GrowthState, config: ModelConfig, maps: dict[str, DimMap], fresh: CLIP) -> GrowthState:
    """Every weight and moment of `state` through `remap`, into the grown `config`; the optimizer
    step count is kept."""
    init, declared = fresh.state_dict(), config_axes(state.config)
    weights, moments = {}, {}
    for name, tensor in state.weights.items():
        axes = declared[name]
        weights[name] = remap(tensor, axes, maps, init[name]) if axes else tensor
    for name, stats in state.moments.items():
        axes = declared[name]
        moments[name] = {stat: remap(t, axes, maps, init[name], stat) if axes and stat != "step" else t
                         for stat, t in stats.items()}
    return GrowthState(config, weights, moments, state.step)
