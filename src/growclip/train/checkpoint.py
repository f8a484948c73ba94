"""Checkpoints: a folder of safetensors weights, JSON model config, tokenizer.json and JSON state.

Written into a temporary sibling folder and renamed into place, so a crash mid-write leaves the
previous checkpoint intact and never a half-written one under the final name. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from growclip.data.tokenizer import Tokenizer, TokenizerError
from growclip.model.clip import CLIP
from growclip.model.config import ConfigError, ModelConfig
from growclip.model.factory import create_model

WEIGHTS, CONFIG, TOKENIZER, STATE = "model.safetensors", "config.json", "tokenizer.json", "state.json"
CHECKPOINTS = "checkpoints"


class CheckpointError(ValueError):
    pass


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(directory: str | Path, model: CLIP, tokenizer: Tokenizer, state: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(f".{directory.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(weights, staging / WEIGHTS)
    model.config.to_json(staging / CONFIG)
    tokenizer.save(staging / TOKENIZER)
    (staging / STATE).write_text(json.dumps(state, indent=2) + "\n")
    for path in staging.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    if directory.exists():  # replace an older checkpoint of the same name: move it aside first
        retired = directory.with_name(f".{directory.name}.old{os.getpid()}")
        os.replace(directory, retired)
        os.replace(staging, directory)
        shutil.rmtree(retired)
    else:
        os.replace(staging, directory)
    return directory


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder whose newest checkpoint is taken."""
    path = Path(path)
    if (path / CONFIG).is_file():
        return path
    candidates = sorted((path / CHECKPOINTS).glob("step_*")) if (path / CHECKPOINTS).is_dir() else []
    if not candidates:
        raise CheckpointError(f"{path}: not a checkpoint folder (no {CONFIG}) and no run folder with "
                              f"{CHECKPOINTS}/step_*")
    return candidates[-1]


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[CLIP, Tokenizer, dict[str, Any]]:
    """-> (model in eval mode, tokenizer, state); every failure names the file and what is wrong."""
    directory = resolve_checkpoint(path)
    for name in (WEIGHTS, CONFIG, TOKENIZER):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: checkpoint is missing {name}")
    try:
        config = ModelConfig.from_json(directory / CONFIG)
        tokenizer = Tokenizer.load(directory / TOKENIZER, config.context_length)
    except (ConfigError, TokenizerError) as err:
        raise CheckpointError(str(err)) from None
    try:
        weights = load_file(directory / WEIGHTS, device=str(device))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{directory / WEIGHTS}: unreadable or truncated weights ({err})") from None
    model = create_model(config).to(device)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{directory / WEIGHTS}: weights do not fit {directory / CONFIG}: {err}") from None
    try:
        state = json.loads((directory / STATE).read_text()) if (directory / STATE).is_file() else {}
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{directory / STATE}: not valid JSON ({err})") from None
    return model.eval(), tokenizer, state
