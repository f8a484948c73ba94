"""Width growth: every residual feature is copied (within each head, so heads keep their identity)
and readers of copied features divide their weights by the number of copies. With a whole factor
each feature has the same number of copies, so LayerNorm statistics are unchanged and the model
computes the same function; a width that is not a whole multiple copies some features more often
than others, which shifts LayerNorm statistics: close, not exact.

What reads the residual stream grows in one of two ways (`units`):
- "copy" (Net2Net): MLP hidden units, attention dimensions and conv-stem channels are copied
  too. The copies receive the same gradients, so they stay copies until something breaks the
  symmetry (PIM m < 1 mixes in a fresh initialisation for that).
- "fresh": the old units are kept and the new ones are brand-new: MLP units with fresh input and
  zero output weights (as `mlp_ratio` grows), attention dimensions with fresh queries and values,
  zero keys and zero output columns, so nothing changes until trained; the new units read the
  copied residual features with different weights, which breaks the copies' symmetry from the
  first step, with the function kept exactly.

With `heads="keep"` the head dimension grows and the old query rows are rescaled to keep the
attention logits; with `heads="scale"` the head count grows with the width and the head dimension
stays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from growclip.growth.base import GrowthError, GrowthOp, field_name, grown_towers
from growclip.growth.remap import DimMap, remap_state
from growclip.growth.state import GrowthState
from growclip.model.axes import HIDDEN, QKV, RESIDUAL, VALUE, tower_space
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig, TowerShape
from growclip.model.stems import conv_stem_channels, stem_space

UNITS = ("copy", "fresh")


def _tiled(new: int, old: int) -> DimMap:
    return DimMap(torch.arange(new) % old)


def _head_positions(after: TowerShape) -> tuple[torch.Tensor, torch.Tensor]:
    """(width,) head and (width,) position within the head of every feature of the grown tower."""
    position = torch.arange(after.width)
    return position // after.head_dim, position % after.head_dim


def _attention_maps(before: TowerShape, after: TowerShape, residual: torch.Tensor, units: str
                    ) -> tuple[DimMap, DimMap]:
    """(QKV rows, values) of the grown attention; `residual`: the old residual feature each new one copies."""
    if units == "copy":
        value, fresh = residual, True
        query_scale = (before.head_dim / after.head_dim) ** 0.5  # q.k sums over the copies of each dimension
    else:
        head, within = _head_positions(after)
        kept = (head < before.heads) & (within < before.head_dim)
        value = torch.where(kept, head * before.head_dim + within, -1)
        yes, no = torch.ones(after.width, dtype=torch.bool), torch.zeros(after.width, dtype=torch.bool)
        fresh = torch.cat([yes, no, yes])  # new queries and values fresh, new keys zero: the old logits stay
        query_scale = (after.head_dim / before.head_dim) ** 0.5  # q.k sums the old dimensions only
    qkv = torch.cat([torch.where(value >= 0, value + part * before.width, -1) for part in range(3)])
    scale = torch.cat([torch.full((after.width,), query_scale), torch.ones(2 * after.width)])
    return DimMap(qkv, scale=scale, fresh_out=fresh), DimMap(value)


def width_maps(old: ModelConfig, new: ModelConfig, tower: str, units: str = "copy") -> dict[str, DimMap]:
    """How one tower's residual features, QKV rows, values, MLP units (and, for vision, conv-stem
    channels) are copied or added."""
    before, after = old.tower(tower), new.tower(tower)
    head, within = _head_positions(after)
    residual = (head % before.heads) * before.head_dim + within % before.head_dim
    qkv, value = _attention_maps(before, after, residual, units)
    hidden = _tiled(after.mlp_hidden, before.mlp_hidden) if units == "copy" else \
        DimMap.extend(before.mlp_hidden, after.mlp_hidden)
    maps = {tower_space(tower, RESIDUAL): DimMap(residual), tower_space(tower, QKV): qkv,
            tower_space(tower, VALUE): value, tower_space(tower, HIDDEN): hidden}
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
    units: str = "copy"  # what reads the residual grows by copies, or by "fresh" silent units (see above)
    tower: str | None = None  # None: both towers and the shared encoder (one width); or "vision" / "text"

    def __post_init__(self) -> None:
        if self.heads not in ("keep", "scale"):
            raise GrowthError(f"width heads= must be 'keep' or 'scale', got {self.heads!r}")
        if self.units not in UNITS:
            raise GrowthError(f"width units= must be one of {', '.join(UNITS)}, got {self.units!r}")

    @property
    def dimension(self) -> str:
        return field_name(self.tower, "width")

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        grown_towers(config, self.tower, "width")
        current = config.tower(self.tower or "text")  # the text tower's shape is the shorthand's
        if self.to < current.width:
            raise GrowthError(f"{self.dimension} grows only: {current.width} -> {self.to}")
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
                for space, dim_map in width_maps(old, new, tower, self.units).items()}

    def exact(self, config: ModelConfig) -> bool:
        """Exact when every old feature (and channel, and with copies every unit) gets the same number
        of copies: fresh units start silent."""
        new = self.grown_config(config)
        factor = self.to / config.tower(self.tower or "text").width
        added = (QKV, VALUE, HIDDEN) if self.units == "fresh" else ()
        return all(bool((dim_map.copies == factor).all()) for space, dim_map in self._maps(config, new).items()
                   if space.rpartition(".")[2] not in added)

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        new = self.grown_config(state.config)
        return remap_state(state, new, self._maps(state.config, new), fresh)

    def spec(self) -> str:
        return f"{self.dimension}={self.to}" + (",heads=scale" if self.heads == "scale" else "") + \
            (",units=fresh" if self.units == "fresh" else "")
