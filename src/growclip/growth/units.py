"""Growth by adding silent units: MLP hidden units (`mlp_ratio`) and joint-embedding dimensions
(`embed_dim`), both exact; and re-splitting attention into more heads (`heads`), which keeps
every weight but not the function."""

from __future__ import annotations

from dataclasses import dataclass, replace

from growclip.growth.base import GrowthError, GrowthOp
from growclip.growth.remap import DimMap, remap_state
from growclip.growth.state import GrowthState
from growclip.model.axes import EMBED, HIDDEN
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig


@dataclass(frozen=True)
class MlpRatio(GrowthOp):
    """New hidden units: fresh input weights, zero output weights, so they add nothing until trained."""

    to: float

    dimension = "mlp_ratio"

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        new = replace(config, mlp_ratio=self.to)
        if new.mlp_hidden < config.mlp_hidden:
            raise GrowthError(f"mlp_ratio grows only: {config.mlp_ratio} -> {self.to}")
        return new

    def exact(self, config: ModelConfig) -> bool:
        return True

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        new = self.grown_config(state.config)
        return remap_state(state, new, {HIDDEN: DimMap.extend(state.config.mlp_hidden, new.mlp_hidden)}, fresh)

    def spec(self) -> str:
        return f"mlp_ratio={self.to:g}"


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

    dimension = "heads"

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        if self.to < config.heads:
            raise GrowthError(f"heads grow only: {config.heads} -> {self.to}")
        return replace(config, heads=self.to)

    def exact(self, config: ModelConfig) -> bool:
        return self.to == config.heads

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        return GrowthState(self.grown_config(state.config), dict(state.weights), dict(state.moments), state.step)

    def spec(self) -> str:
        return f"heads={self.to}"
