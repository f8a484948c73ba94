"""Checkpoints: a folder of safetensors weights, JSON model config, tokenizer.json and JSON state,
plus `trainer.safetensors` (optimizer moments, RNG) in checkpoints a run can resume from.

Written into a hidden temporary sibling folder and renamed into place, and deleted by renaming
to a hidden name first, so a crash at any moment leaves whole checkpoints under `step_*` names
and never a partial one. Nothing is pickled: tensors are safetensors, the rest JSON.
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
TRAINER = "trainer.safetensors"
CHECKPOINTS = "checkpoints"


class CheckpointError(ValueError):
    pass


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def checkpoint_path(run: str | Path, step: int) -> Path:
    return Path(run) / CHECKPOINTS / checkpoint_name(step)


def save_checkpoint(directory: str | Path, model: CLIP, tokenizer: Tokenizer, state: dict[str, Any],
                    trainer: dict[str, torch.Tensor] | None = None,
                    extra: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """`trainer`: the tensors of the training state (see `train.state`), for a resumable checkpoint;
    `extra`: more safetensors files by name (a growth search's contenders)."""
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
    files = {TRAINER: trainer} if trainer is not None else {}
    for name, tensors in (files | (extra or {})).items():
        save_file({key: t.detach().cpu().contiguous() for key, t in tensors.items()}, staging / name)
    for path in staging.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    if directory.exists():  # replace an older checkpoint of the same name
        _retire(directory)
    os.replace(staging, directory)
    return directory


def _retire(directory: Path) -> None:
    """Delete a checkpoint so that a crash half-way leaves no partial folder under its real name."""
    retired = directory.with_name(f".{directory.name}.old{os.getpid()}")
    os.replace(directory, retired)
    shutil.rmtree(retired)


def checkpoints_of(run: str | Path) -> list[Path]:
    """A run's complete checkpoints, oldest first (hidden staging or retired folders excluded)."""
    folder = Path(run) / CHECKPOINTS
    return sorted(p for p in folder.glob("step_*") if p.is_dir()) if folder.is_dir() else []


def prune_checkpoints(run: str | Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints (all if 0); clear leftovers of interrupted writes."""
    folder = Path(run) / CHECKPOINTS
    for leftover in folder.glob(".step_*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for old in checkpoints_of(run)[:-keep] if keep else []:
        _retire(old)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder whose newest checkpoint is taken."""
    path = Path(path)
    if (path / CONFIG).is_file():
        return path
    candidates = checkpoints_of(path)
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
    weights = _read_tensors(directory / WEIGHTS, device)
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


def _read_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: unreadable or truncated ({err})") from None


def load_trainer_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The training-state tensors of a resumable checkpoint (on CPU)."""
    directory = resolve_checkpoint(path)
    if not (directory / TRAINER).is_file():
        raise CheckpointError(f"{directory}: no {TRAINER}, so no optimizer or RNG state to resume from "
                              f"(it can still be evaluated)")
    return _read_tensors(directory / TRAINER)


def load_extra_tensors(path: str | Path, name: str) -> dict[str, torch.Tensor]:
    directory = resolve_checkpoint(path)
    if not (directory / name).is_file():
        raise CheckpointError(f"{directory}: {name} is missing")
    return _read_tensors(directory / name)
