"""Width growth by duplication: exact for whole factors, Net2Net-style approximate otherwise.

Every residual feature is copied (within each head, so heads keep their identity), the MLP
hidden units and conv-stem channels likewise, and readers of copied features divide their
weights by the number of copies. With a whole factor each feature has the same number of
copies, so LayerNorm statistics are unchanged and the model computes the same function;
a width that is not a whole multiple copies some features more often than others, which
shifts LayerNorm statistics: close, not exact. With `heads="keep"` the head dimension grows
and the query rows are scaled by sqrt(old/new head dim) to keep attention logits; with
`heads="scale"` whole heads are copied and the head dimension stays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from growclip.growth.base import GrowthError, GrowthOp
from growclip.growth.remap import DimMap, remap_state
from growclip.growth.state import GrowthState
from growclip.model.axes import HIDDEN, QKV, RESIDUAL
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.stems import conv_stem_channels, stem_space


def _tiled(new: int, old: int) -> DimMap:
    return DimMap(torch.arange(new) % old)


def width_maps(old: ModelConfig, new: ModelConfig) -> dict[str, DimMap]:
    position = torch.arange(new.width)
    head, within = position // new.head_dim, position % new.head_dim
    residual = (head % old.heads) * old.head_dim + within % old.head_dim
    query_scale = (old.head_dim / new.head_dim) ** 0.5
    scale = torch.cat([torch.full((new.width,), query_scale), torch.ones(2 * new.width)])
    maps = {
        RESIDUAL: DimMap(residual),
        QKV: DimMap(torch.cat([residual + part * old.width for part in range(3)]), scale=scale),
        HIDDEN: _tiled(new.mlp_hidden, old.mlp_hidden),
    }
    if old.stem == "conv":
        channels = list(zip(conv_stem_channels(old.width, old.patch_size),
                            conv_stem_channels(new.width, new.patch_size)))
        for stage, (old_channels, new_channels) in enumerate(channels):
            if stem_space(stage, len(channels)) != RESIDUAL:
                maps[stem_space(stage, len(channels))] = _tiled(new_channels, old_channels)
    return maps


@dataclass(frozen=True)
class Width(GrowthOp):
    to: int
    heads: str = "keep"  # "keep" the head count (wider heads) or "scale" it with the width

    dimension = "width"

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        if self.to < config.width:
            raise GrowthError(f"width grows only: {config.width} -> {self.to}")
        if self.heads not in ("keep", "scale"):
            raise GrowthError(f"width heads= must be 'keep' or 'scale', got {self.heads!r}")
        heads = config.heads
        if self.heads == "scale":
            if self.to % config.width:
                raise GrowthError(f"heads=scale needs a whole width factor, got {config.width} -> {self.to}")
            heads = config.heads * self.to // config.width
        if self.to % heads:
            raise GrowthError(f"width {self.to} is not divisible by {heads} heads")
        return replace(config, width=self.to, heads=heads)

    def exact(self, config: ModelConfig) -> bool:
        """Exact when every old feature, unit and channel gets the same number of copies."""
        new = self.grown_config(config)
        factor = new.width / config.width
        return all(bool((dim_map.copies == factor).all()) for dim_map in width_maps(config, new).values())

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        new = self.grown_config(state.config)
        return remap_state(state, new, width_maps(state.config, new), fresh)

    def spec(self) -> str:
        return f"width={self.to}" + (",heads=scale" if self.heads == "scale" else "")
