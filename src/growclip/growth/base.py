"""The growth-operator interface: (config, weights, moments) -> grown (config, weights, moments)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from growclip.growth.state import GrowthState
from growclip.model.clip import CLIP
from growclip.model.config import TOWERS, ConfigError, ModelConfig


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


def grown_towers(config: ModelConfig, tower: str | None, what: str) -> tuple[str, ...]:
    """The towers an operator on `what` ("width", "heads", "mlp_ratio") changes: every one for the
    shorthand (`tower` None), while the towers have one shape; one tower, while no block is shared."""
    if tower is None:
        if config.towers_differ:
            raise GrowthError(f"{what}: the towers have shapes of their own ({config.describe()}); grow "
                              f"vision_{what} or text_{what}")
        return TOWERS
    if tower not in ("vision", "text"):
        raise GrowthError(f"no tower {tower!r}: vision or text")
    if config.shared_layers:
        raise GrowthError(f"{tower}_{what}: a shared encoder needs towers of one shape; grow {what}")
    return (tower,)


def field_name(tower: str | None, what: str) -> str:
    """The config field an operator sets: the shorthand `width`, or a tower's `vision_width`."""
    return what if tower is None else f"{tower}_{what}"
