"""Architecture config: the one description of a model that growth, checkpoints and FLOP counts share."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

STEMS = ("patch", "conv")


class ConfigError(ValueError):
    """A model config that cannot describe a valid model; the message says which field and why."""


GROWABLE = ("width", "heads", "mlp_ratio", "vision_layers", "text_layers", "shared_layers", "embed_dim")


@dataclass(frozen=True)
class ModelConfig:
    """Every field is a growth dimension or a fixed input/output size.

    `width` is the one residual width of all transformer blocks (vision, text and shared), so a
    shared block can serve both modalities. MLP hidden size is `round(width * mlp_ratio)`.
    """

    width: int = 128
    heads: int = 4
    mlp_ratio: float = 4.0
    vision_layers: int = 4
    text_layers: int = 4
    shared_layers: int = 0
    embed_dim: int = 128
    patch_size: int = 4
    image_size: int = 32
    context_length: int = 32
    vocab_size: int = 1024
    stem: Literal["patch", "conv"] = "patch"
    parallel_branch: bool = False
    branch_width: int = 32

    def __post_init__(self) -> None:
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_hidden(self) -> int:
        return round(self.width * self.mlp_ratio)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def image_tokens(self) -> int:
        return self.grid_size**2 + 1

    @property
    def image_path_layers(self) -> int:
        """Blocks an image passes through: each gets a lateral adapter when the branch is on."""
        return self.vision_layers + self.shared_layers

    def validate(self) -> None:
        positive = ("width", "heads", "embed_dim", "patch_size", "image_size", "context_length",
                    "vocab_size", "branch_width")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("vision_layers", "text_layers", "shared_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.width % self.heads:
            raise ConfigError(f"width {self.width} is not divisible by heads {self.heads}")
        if not isinstance(self.mlp_ratio, int | float) or not math.isfinite(self.mlp_ratio) or self.mlp_ratio <= 0 \
                or self.mlp_hidden < 1:  # JSON's NaN and Infinity parse as floats
            raise ConfigError(f"mlp_ratio must be a finite number giving at least one hidden unit, "
                              f"got {self.mlp_ratio!r}")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.stem not in STEMS:
            raise ConfigError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.stem == "conv" and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise ConfigError(
                f"the conv stem halves the image per stage, so patch_size must be a power of two "
                f">= 2, got {self.patch_size}")
        if self.vision_layers + self.shared_layers == 0 or self.text_layers + self.shared_layers == 0:
            raise ConfigError("each modality needs at least one transformer block")

    def describe(self) -> str:
        """The growable dimensions, as the growth operators name them."""
        return ", ".join(f"{name}={getattr(self, name):g}" for name in GROWABLE)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown model config keys {unknown}; known keys are {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        except TypeError as err:
            raise ConfigError(f"{source}: {err}") from None

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: model config file not found") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object of model config keys")
        return cls.from_dict(data, source=str(path))
