"""Checkpoints: a folder of safetensors weights, JSON model config, tokenizer.json and JSON state,
plus `trainer.safetensors` (optimizer moments, RNG) in checkpoints a run can resume from.

Written into a hidden temporary sibling folder and renamed into place, and deleted by renaming
to a hidden name first, so a crash at any moment leaves whole checkpoints under `step_*` names
and never a partial one. Nothing is pickled: tensors are safetensors, the rest JSON. `hashes.json`
holds every file's SHA-256, checked on loading, so an edited or corrupted file is refused rather
than loaded as a different model; non-finite weights are never written and never loaded.
"""

from __future__ import annotations

import hashlib
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
TRAINER, HASHES = "trainer.safetensors", "hashes.json"
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
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    bad = nonfinite(weights)
    if bad:
        raise CheckpointError(f"not saving {directory}: non-finite weights in {bad[:3]}")
    staging = directory.with_name(f".{directory.name}.tmp{os.getpid()}")
    try:
        _write(staging, weights, model, tokenizer, state, trainer, extra)
        if directory.exists():  # replace an older checkpoint of the same name
            _retire(directory)
        os.replace(staging, directory)
    except OSError as err:  # a read-only or full disk: no partial folder is left behind
        shutil.rmtree(staging, ignore_errors=True)
        raise CheckpointError(f"cannot write checkpoint {directory}: {err.strerror or err}") from None
    return directory


def nonfinite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity."""
    return [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]


def _write(staging: Path, weights: dict[str, torch.Tensor], model: CLIP, tokenizer: Tokenizer,
           state: dict[str, Any], trainer: dict[str, torch.Tensor] | None,
           extra: dict[str, dict[str, torch.Tensor]] | None) -> None:
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    save_file(weights, staging / WEIGHTS)
    model.config.to_json(staging / CONFIG)
    tokenizer.save(staging / TOKENIZER)
    (staging / STATE).write_text(json.dumps(state, indent=2) + "\n")
    files = {TRAINER: trainer} if trainer is not None else {}
    for name, tensors in (files | (extra or {})).items():
        save_file({key: t.detach().cpu().contiguous() for key, t in tensors.items()}, staging / name)
    hashes = {path.name: _sha256(path) for path in sorted(staging.iterdir())}
    (staging / HASHES).write_text(json.dumps(hashes, indent=2) + "\n")
    for path in staging.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_hashes(directory: Path) -> None:
    """Every file listed in `hashes.json` as it was written (checkpoints from before hashes pass)."""
    if not (directory / HASHES).is_file():
        return
    for name, digest in json.loads((directory / HASHES).read_text()).items():
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: {name} is missing")
        if _sha256(directory / name) != digest:
            raise CheckpointError(f"{directory / name}: changed since the checkpoint was saved (edited or "
                                  f"corrupted; its SHA-256 does not match {HASHES})")


def _retire(directory: Path) -> None:
    """Delete a checkpoint so that a crash half-way leaves no partial folder under its real name."""
    retired = directory.with_name(f".{directory.name}.old{os.getpid()}")
    os.replace(directory, retired)
    shutil.rmtree(retired)


def checkpoints_of(run: str | Path) -> list[Path]:
    """A run's complete checkpoints, oldest first (hidden staging or retired folders excluded)."""
    folder = Path(run) / CHECKPOINTS
    return sorted(p for p in folder.glob("step_*") if p.is_dir()) if folder.is_dir() else []


def remove_leftovers(run: str | Path) -> None:
    """Hidden staging or retired folders of writes that were interrupted (a run's start clears them)."""
    for leftover in (Path(run) / CHECKPOINTS).glob(".step_*"):
        shutil.rmtree(leftover, ignore_errors=True)


def prune_checkpoints(run: str | Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints (all if 0); clear leftovers of interrupted writes."""
    remove_leftovers(run)
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
    verify_hashes(directory)
    try:
        config = ModelConfig.from_json(directory / CONFIG)
        tokenizer = Tokenizer.load(directory / TOKENIZER, config.context_length)
    except (ConfigError, TokenizerError) as err:
        raise CheckpointError(str(err)) from None
    weights = _read_tensors(directory / WEIGHTS, device)
    bad = nonfinite(weights)
    if bad:
        raise CheckpointError(f"{directory / WEIGHTS}: non-finite weights in {bad[:3]} (a diverged run)")
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
