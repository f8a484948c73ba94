"""Architecture config: the one description of a model that growth, checkpoints and FLOP counts share."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

STEMS = ("patch", "conv")
ACTIVATIONS = ("gelu", "quick_gelu")
TOWERS = ("vision", "text", "shared")
TOWER_SHAPE = ("width", "heads", "mlp_ratio")  # what a tower may set for itself (`vision_width`, ...)


class ConfigError(ValueError):
    """A model config that cannot describe a valid model; the message says which field and why."""


GROWABLE = ("width", "heads", "mlp_ratio", "vision_layers", "text_layers", "shared_layers", "embed_dim")


@dataclass(frozen=True)
class TowerShape:
    """One stack of transformer blocks: the vision tower, the text tower or the shared encoder."""

    width: int
    heads: int
    mlp_ratio: float
    layers: int

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_hidden(self) -> int:
        return round(self.width * self.mlp_ratio)


@dataclass(frozen=True)
class ModelConfig:
    """Every field is a growth dimension or a fixed input/output size.

    `width`, `heads` and `mlp_ratio` are the shared encoder's and, unless a tower sets its own
    (`vision_width`, `text_heads`, ...), both towers'. Released CLIPs have towers of their own
    widths (ViT-B-32: 768 and 512); a shared block serves both modalities, so it needs them equal.
    The form is canonical: a tower's own value equal to the shorthand is stored as None, and towers
    that agree make the shorthand. MLP hidden size is `round(width * mlp_ratio)`.
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
    activation: Literal["gelu", "quick_gelu"] = "gelu"  # QuickGELU: OpenAI's CLIP weights
    vision_width: int | None = None
    vision_heads: int | None = None
    vision_mlp_ratio: float | None = None
    text_width: int | None = None
    text_heads: int | None = None
    text_mlp_ratio: float | None = None

    def __post_init__(self) -> None:
        self._canonicalise()
        self.validate()

    def _canonicalise(self) -> None:
        for name in TOWER_SHAPE:
            vision, text = (getattr(self, f"{tower}_{name}") for tower in ("vision", "text"))
            vision, text = (getattr(self, name) if value is None else value for value in (vision, text))
            shorthand = text  # towers that differ keep the text tower's as the shorthand
            object.__setattr__(self, name, shorthand)
            object.__setattr__(self, f"vision_{name}", None if vision == shorthand else vision)
            object.__setattr__(self, f"text_{name}", None)

    def tower(self, name: str) -> TowerShape:
        """The shape of the "vision" tower, the "text" tower or the "shared" encoder."""
        def own(field: str) -> Any:
            value = None if name == "shared" else getattr(self, f"{name}_{field}")
            return getattr(self, field) if value is None else value

        return TowerShape(own("width"), own("heads"), own("mlp_ratio"), getattr(self, f"{name}_layers"))

    @property
    def vision(self) -> TowerShape:
        return self.tower("vision")

    @property
    def text(self) -> TowerShape:
        return self.tower("text")

    @property
    def towers_differ(self) -> bool:
        """Do the towers have shapes of their own (then no block can be shared)?"""
        return any(getattr(self, f"vision_{name}") is not None for name in TOWER_SHAPE)

    @property
    def head_dim(self) -> int:
        return self.tower("shared").head_dim

    @property
    def mlp_hidden(self) -> int:
        return self.tower("shared").mlp_hidden

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
                    "vocab_size", "branch_width", "vision_width", "vision_heads")
        for name in positive:
            value = getattr(self, name)
            if value is None and name.startswith("vision_"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("vision_layers", "text_layers", "shared_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        for tower in ("text", "vision"):  # the shorthand first: a vision tower without its own shape is the same
            self._validate_tower(tower, self.tower(tower))
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.shared_layers and self.towers_differ:
            raise ConfigError(f"a shared block serves both towers, so shared_layers={self.shared_layers} needs "
                              f"towers of one shape; the vision tower has {self.describe()}")
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

    @staticmethod
    def _validate_tower(name: str, shape: TowerShape) -> None:
        prefix = "" if name == "text" else f"{name}_"  # the text tower's values are the shorthand
        if shape.width % shape.heads:
            raise ConfigError(f"{prefix}width {shape.width} is not divisible by {prefix}heads {shape.heads}")
        ratio = shape.mlp_ratio
        if not isinstance(ratio, int | float) or isinstance(ratio, bool) or not math.isfinite(ratio) or ratio <= 0 \
                or shape.mlp_hidden < 1:  # JSON's NaN and Infinity parse as floats
            raise ConfigError(f"{prefix}mlp_ratio must be a finite number giving at least one hidden unit, "
                              f"got {ratio!r}")

    def describe(self) -> str:
        """The growable dimensions, as the growth operators name them (a tower's own after the shorthand)."""
        parts = []
        for name in GROWABLE:
            parts.append(f"{name}={getattr(self, name):g}")
            if name in TOWER_SHAPE and getattr(self, f"vision_{name}") is not None:
                parts.append(f"vision_{name}={getattr(self, f'vision_{name}'):g}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Every field, but the tower shapes and the activation only where they are not the default,
        so that configs written before towers had their own shapes are written the same."""
        data = asdict(self)
        unset = [name for name in data if name.startswith(("vision_", "text_")) and name not in
                 ("vision_layers", "text_layers") and data[name] is None]
        return {k: v for k, v in data.items() if k not in unset and not (k == "activation" and v == "gelu")}

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
