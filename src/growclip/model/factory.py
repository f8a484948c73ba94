"""Build models from named presets (JSON files in `presets/`) or config files, as open_clip does."""

from __future__ import annotations

from pathlib import Path

import torch

from growclip.model.clip import CLIP
from growclip.model.config import ConfigError, ModelConfig
from growclip.model.memory import check_fits

PRESET_DIR = Path(__file__).parent / "presets"


def list_presets() -> list[str]:
    return sorted(path.stem for path in PRESET_DIR.glob("*.json"))


def load_config(name_or_path: str | Path, **overrides: object) -> ModelConfig:
    """A preset name (`clip-small`) or a path to a config JSON, with field overrides on top."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        if str(name_or_path) not in list_presets():
            raise ConfigError(f"unknown model {name_or_path!r}: give a config .json path or a preset "
                              f"({', '.join(list_presets())})")
        path = PRESET_DIR / f"{name_or_path}.json"
    return ModelConfig.from_dict({**ModelConfig.from_json(path).to_dict(), **overrides}, source=str(path))


def create_model(config: ModelConfig | str, seed: int = 0) -> CLIP:
    """A freshly initialised model; the same seed gives the same weights, global RNG untouched.
    A config that could not be trained in this machine's memory is refused before allocating."""
    if not isinstance(config, ModelConfig):
        config = load_config(config)
    check_fits(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIP(config)
