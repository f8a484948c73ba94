"""Re-indexing tensors along the dimensions growth widens, for weights and AdamW moments alike.

Every parameter dimension lives in a *space* (the residual width, the MLP hidden units, the
qkv rows, a conv-stem stage's channels, the joint embedding) and is either an *out* dimension
(it produces features of that space: rows of a linear, LayerNorm and embedding entries) or an
*in* dimension (it reads them: the columns of a linear). A `DimMap` says, for each position of
the grown space, which old position it copies (-1: a brand-new one).

Function preservation: a copied out position copies the weights; a copied in position divides
them by the number of copies, so the sum over copies reads the old value. New out positions
come from the fresh initialisation (or zero), new in positions are zero, so new units start
silent. Moments follow the gradients these rules imply: an out position with c copies gets 1/c
of the old gradient (the copies share its effect), scaled rows get the inverse scale; the
second moment takes the square.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from growclip.growth.state import GrowthState
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.stems import conv_stem_channels


@dataclass(frozen=True)
class DimMap:
    index: torch.Tensor  # (new,) old position copied by each new position; -1 = brand new
    scale: torch.Tensor | None = None  # (new,) weight multiplier of out positions (attention query rows)
    fresh_out: bool = True  # brand-new out positions from the fresh init; False: zero

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


_STEM_STAGE = re.compile(r"^vision_embed\.stem\.stages\.(\d+)\.(\w+)\.(weight|bias|running_mean|running_var)$")
_RESIDUAL_OUT = re.compile(
    r"(class_embedding|ln_\d\.\w+\.(weight|bias)|ln_pre\.(weight|bias)|_head\.ln\.(weight|bias)"
    r"|attn\.proj\.bias|fc2\.bias|branch_pointwise\.(weight|bias)|grid_depthwise\.(weight|bias)"
    r"|adapters\.\d+\.norm\.(weight|bias)|stem\.proj\.weight)$")
_LINEARS = {  # name suffix -> {dim: (space, kind)}
    "attn.qkv.weight": {0: ("qkv", "out"), 1: ("residual", "in")},
    "attn.qkv.bias": {0: ("qkv", "out")},
    "attn.proj.weight": {0: ("residual", "out"), 1: ("residual", "in")},
    "mlp.fc1.weight": {0: ("hidden", "out"), 1: ("residual", "in")},
    "mlp.fc1.bias": {0: ("hidden", "out")},
    "mlp.fc2.weight": {0: ("residual", "out"), 1: ("hidden", "in")},
    "head.proj.weight": {0: ("embed", "out"), 1: ("residual", "in")},
}


def stem_space(config: ModelConfig, stage: int) -> str:
    """Channels of conv-stem stage `stage`; the last stage's are the residual width itself."""
    return "residual" if stage == len(conv_stem_channels(config.width, config.patch_size)) - 1 else f"stem{stage}"


def param_axes(name: str, ndim: int, config: ModelConfig) -> dict[int, tuple[str, str]]:
    """{dim: (space, "out" | "in")} of one state-dict entry; empty for tensors growth never widens
    (the logit scale, the parallel branch's own channels, BatchNorm batch counters)."""
    for suffix, axes in _LINEARS.items():
        if name.endswith(suffix):
            return axes
    if name.endswith(("positional_embedding", "token_embedding.weight")):
        return {ndim - 1: ("residual", "out")}
    if _RESIDUAL_OUT.search(name):
        return {0: ("residual", "out")}
    if re.match(r"^vision_embed\.stem\.first\.\d\.(weight|bias|running_mean|running_var)$", name):
        return {0: (stem_space(config, 0), "out")}
    match = _STEM_STAGE.match(name)
    if match:
        stage, layer, kind = int(match[1]), match[2], match[3]
        out = {0: (stem_space(config, stage + 1), "out")}
        if kind == "weight" and layer in ("conv1", "shortcut"):
            return {**out, 1: (stem_space(config, stage), "in")}
        return {**out, 1: (stem_space(config, stage + 1), "in")} if layer == "conv2" else out
    return {}


def _along(values: torch.Tensor, dim: int, ndim: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[dim] = -1
    return values.view(shape)


def remap(old: torch.Tensor, axes: dict[int, tuple[str, str]], maps: dict[str, DimMap], fresh: torch.Tensor,
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
        brand_new = _along(dim_map.index < 0, dim, old.ndim)
        if kind == "out" and dim_map.fresh_out:
            fresh_mask = fresh_mask | brand_new
        else:
            zero_mask = zero_mask | brand_new
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
    init = fresh.state_dict()
    weights, moments = {}, {}
    for name, tensor in state.weights.items():
        axes = param_axes(name, tensor.ndim, state.config)
        weights[name] = remap(tensor, axes, maps, init[name]) if axes else tensor
    for name, stats in state.moments.items():
        axes = param_axes(name, state.weights[name].ndim, state.config)
        moments[name] = {stat: remap(t, axes, maps, init[name], stat) if axes and stat != "step" else t
                         for stat, t in stats.items()}
    return GrowthState(config, weights, moments, state.step)
