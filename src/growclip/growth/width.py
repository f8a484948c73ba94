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

from growclip.growth.base import GrowthError, GrowthOp, field_name, grown_towers
from growclip.growth.remap import DimMap, remap_state
from growclip.growth.state import GrowthState
from growclip.model.axes import HIDDEN, QKV, RESIDUAL, tower_space
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.stems import conv_stem_channels, stem_space


def _tiled(new: int, old: int) -> DimMap:
    return DimMap(torch.arange(new) % old)


def width_maps(old: ModelConfig, new: ModelConfig, tower: str) -> dict[str, DimMap]:
    """How one tower's residual features, QKV rows, MLP units (and, for vision, conv-stem channels) are copied."""
    before, after = old.tower(tower), new.tower(tower)
    position = torch.arange(after.width)
    head, within = position // after.head_dim, position % after.head_dim
    residual = (head % before.heads) * before.head_dim + within % before.head_dim
    query_scale = (before.head_dim / after.head_dim) ** 0.5
    scale = torch.cat([torch.full((after.width,), query_scale), torch.ones(2 * after.width)])
    maps = {
        tower_space(tower, RESIDUAL): DimMap(residual),
        tower_space(tower, QKV): DimMap(torch.cat([residual + part * before.width for part in range(3)]), scale=scale),
        tower_space(tower, HIDDEN): _tiled(after.mlp_hidden, before.mlp_hidden),
    }
    if tower == "vision" and old.stem == "conv":
        channels = list(zip(conv_stem_channels(before.width, old.patch_size),
                            conv_stem_channels(after.width, new.patch_size)))
        for stage, (old_channels, new_channels) in enumerate(channels):
            if stem_space(stage, len(channels)) != RESIDUAL:
                maps[tower_space(tower, stem_space(stage, len(channels)))] = _tiled(new_channels, old_channels)
    return maps


@dataclass(frozen=True)
class Width(GrowthOp):
    to: int
    heads: str = "keep"  # "keep" the head count (wider heads) or "scale" it with the width
    tower: str | None = None  # None: both towers and the shared encoder (one width); or "vision" / "text"

    @property
    def dimension(self) -> str:
        return field_name(self.tower, "width")

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        grown_towers(config, self.tower, "width")
        current = config.tower(self.tower or "text")  # the text tower's shape is the shorthand's
        if self.to < current.width:
            raise GrowthError(f"{self.dimension} grows only: {current.width} -> {self.to}")
        if self.heads not in ("keep", "scale"):
            raise GrowthError(f"width heads= must be 'keep' or 'scale', got {self.heads!r}")
        heads = current.heads
        if self.heads == "scale":
            if self.to % current.width:
                raise GrowthError(f"heads=scale needs a whole width factor, got {current.width} -> {self.to}")
            heads = current.heads * self.to // current.width
        if self.to % heads:
            raise GrowthError(f"{self.dimension} {self.to} is not divisible by {heads} heads")
        return replace(config, **{self.dimension: self.to, field_name(self.tower, "heads"): heads})

    def _maps(self, old: ModelConfig, new: ModelConfig) -> dict[str, DimMap]:
        return {space: dim_map for tower in grown_towers(old, self.tower, "width")
                for space, dim_map in width_maps(old, new, tower).items()}

    def exact(self, config: ModelConfig) -> bool:
        """Exact when every old feature, unit and channel gets the same number of copies."""
        new = self.grown_config(config)
        factor = self.to / config.tower(self.tower or "text").width
        return all(bool((dim_map.copies == factor).all()) for dim_map in self._maps(config, new).values())

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        new = self.grown_config(state.config)
        return remap_state(state, new, self._maps(state.config, new), fresh)

    def spec(self) -> str:
        return f"{self.dimension}={self.to}" + (",heads=scale" if self.heads == "scale" else "")
