"""Growth by adding silent units: MLP hidden units (`mlp_ratio`) and joint-embedding dimensions
(`embed_dim`), both exact; and re-splitting attention into more heads (`heads`), which keeps
every weight but not the function."""

from __future__ import annotations

from dataclasses import dataclass, replace

from growclip.growth.base import GrowthError, GrowthOp, field_name, grown_towers
from growclip.growth.remap import DimMap, remap_state
from growclip.growth.state import GrowthState
from growclip.model.axes import EMBED, HIDDEN, tower_space
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig


@dataclass(frozen=True)
class MlpRatio(GrowthOp):
    """New hidden units: fresh input weights, zero output weights, so they add nothing until trained."""

    to: float
    tower: str | None = None  # None: both towers and the shared encoder; or "vision" / "text"

    @property
    def dimension(self) -> str:
        return field_name(self.tower, "mlp_ratio")

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        towers = grown_towers(config, self.tower, "mlp_ratio")
        new = replace(config, **{self.dimension: self.to})
        if any(new.tower(t).mlp_hidden < config.tower(t).mlp_hidden for t in towers):
            raise GrowthError(f"{self.dimension} grows only: {config.tower(towers[0]).mlp_ratio} -> {self.to}")
        return new

    def exact(self, config: ModelConfig) -> bool:
        return True

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        old, new = state.config, self.grown_config(state.config)
        maps = {tower_space(t, HIDDEN): DimMap.extend(old.tower(t).mlp_hidden, new.tower(t).mlp_hidden)
                for t in grown_towers(old, self.tower, "mlp_ratio")}
        return remap_state(state, new, maps, fresh)

    def spec(self) -> str:
        return f"{self.dimension}={self.to:g}"


@dataclass(frozen=True)
class EmbedDim(GrowthOp):
    """New embedding dimensions are zero in both heads: norms and similarities are unchanged."""

    to: int

    dimension = "embed_dim"

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        if self.to < config.embed_dim:
            raise GrowthError(f"embed_dim grows only: {config.embed_dim} -> {self.to}")
        return replace(config, embed_dim=self.to)

    def exact(self, config: ModelConfig) -> bool:
        return True

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        new = self.grown_config(state.config)
        maps = {EMBED: DimMap.extend(state.config.embed_dim, new.embed_dim, fresh_out=False)}
        return remap_state(state, new, maps, fresh)

    def spec(self) -> str:
        return f"embed_dim={self.to}"


@dataclass(frozen=True)
class Heads(GrowthOp):
    """Same weights, attention split into more, narrower heads: inherits everything, changes the
    function (each head now attends over a slice of its old subspace)."""

    to: int
    tower: str | None = None  # None: both towers and the shared encoder; or "vision" / "text"

    @property
    def dimension(self) -> str:
        return field_name(self.tower, "heads")

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        grown_towers(config, self.tower, "heads")
        current = config.tower(self.tower or "text").heads  # the text tower's shape is the shorthand's
        if self.to < current:
            raise GrowthError(f"{self.dimension} grow only: {current} -> {self.to}")
        return replace(config, **{self.dimension: self.to})

    def exact(self, config: ModelConfig) -> bool:
        return self.grown_config(config) == config

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        return GrowthState(self.grown_config(state.config), dict(state.weights), dict(state.moments), state.step)

    def spec(self) -> str:
        return f"{self.dimension}={self.to}"
