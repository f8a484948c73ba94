"""The growth-operator interface: (config, weights, moments) -> grown (config, weights, moments)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from growclip.growth.state import GrowthState
from growclip.model.clip import CLIP
from growclip.model.config import ConfigError, ModelConfig


class GrowthError(ConfigError):
    """An operator that cannot apply to this architecture (shrinking, indivisible widths, ...)."""


class GrowthOp(ABC):
    """One growth step along one dimension. `fresh` is the grown architecture's fresh initialisation,
    from which brand-new units are drawn (and which PIM mixes in afterwards)."""

    dimension: str  # the ModelConfig field(s) it grows, for tables and logs

    @abstractmethod
    def grown_config(self, config: ModelConfig) -> ModelConfig: ...

    @abstractmethod
    def exact(self, config: ModelConfig) -> bool:
        """Function preserving when applied to `config` (embeddings and loss unchanged)?"""

    @abstractmethod
    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState: ...

    @abstractmethod
    def spec(self) -> str:
        """The operator as `growclip grow --op` spells it."""
