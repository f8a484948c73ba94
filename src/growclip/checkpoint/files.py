"""Checkpoint folders: safetensors weights, JSON model config, tokenizer.json and JSON state, plus
`trainer.safetensors` (the tensors of the training state) in checkpoints a run can resume from.
What goes into the state is `checkpoint.manager`'s business; this module writes and reads folders.

Written into a hidden temporary sibling folder and renamed into place, and deleted by renaming
to a hidden name first, so a crash at any moment leaves whole checkpoints under `step_*` names
and never a partial one; a checkpoint that replaces one of the same name takes its place before the
old copy is deleted, and `recover_leftovers` puts a complete copy a crash left hidden back. Nothing
is pickled: tensors are safetensors, the rest JSON. `hashes.json` holds every file's SHA-256,
checked on loading, so an edited or corrupted file is refused rather than loaded as a different
model; non-finite weights are never written and never loaded.

`hashes.json` is also what marks a folder as growclip's: rotation, clean-up and `--resume latest`
consider only `checkpoints/step_NNNNNNNN` folders that carry one, and delete only the files it
lists, so a user's `step_best` or notes are never touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
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
EVAL_RESULTS = "eval.json"  # `growclip eval` writes it into a checkpoint folder: growclip's too
STEP_NAME = re.compile(r"step_(\d{8})")
LEFTOVER_NAME = re.compile(r"\.(step_\d{8})\.(tmp|old)\d+")  # staged (tmp) or retired (old) by a save
logger = logging.getLogger(__name__)


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
    if directory.exists() and (not is_growclip_checkpoint(directory, any_name=True) or foreign_files(directory)):
        raise CheckpointError(f"not saving {directory}: a folder of that name exists and holds files growclip "
                              f"did not write; growclip replaces only its own checkpoints")
    staging = _hidden(directory, "tmp")
    try:
        _write(staging, weights, model, tokenizer, state, trainer, extra)
        _put_in_place(staging, directory)
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


def _hidden(directory: Path, kind: str) -> Path:
    return directory.with_name(f".{directory.name}.{kind}{os.getpid()}")


def _put_in_place(staging: Path, directory: Path) -> None:
    """The new checkpoint takes its name before an older one of that name is deleted: a crash in
    between leaves both complete, hidden, for `recover_leftovers`."""
    if not directory.exists():
        os.replace(staging, directory)
        return
    retired = _hidden(directory, "old")
    os.replace(directory, retired)
    os.replace(staging, directory)
    _delete_owned(retired)


def _listed_files(directory: Path) -> set[str] | None:
    """The files `hashes.json` lists (the marker of a growclip checkpoint), or None without one."""
    try:
        hashes = json.loads((directory / HASHES).read_text())
    except (OSError, ValueError):
        return None
    return set(hashes) if isinstance(hashes, dict) and {WEIGHTS, CONFIG} <= set(hashes) else None


def is_growclip_checkpoint(directory: Path, any_name: bool = False) -> bool:
    """A folder growclip wrote as a checkpoint: its `hashes.json` lists its weights and config, and
    (unless `any_name`) it is named `step_NNNNNNNN` as the run's checkpoints are."""
    named = any_name or STEP_NAME.fullmatch(directory.name) is not None
    return named and directory.is_dir() and _listed_files(directory) is not None


def foreign_files(directory: Path) -> list[str]:
    """What in a growclip checkpoint folder growclip did not write (a user's notes, say)."""
    ours = (_listed_files(directory) or set()) | {HASHES, EVAL_RESULTS}
    return sorted(p.name for p in directory.iterdir() if p.name not in ours)


def _delete_owned(directory: Path) -> None:
    """Delete a checkpoint growclip wrote: renamed to a hidden name first, so that a crash half-way
    leaves no partial folder under its real name."""
    retired = directory if directory.name.startswith(".") else _hidden(directory, "old")
    os.replace(directory, retired)
    shutil.rmtree(retired)


def checkpoints_of(run: str | Path) -> list[Path]:
    """A run's complete growclip checkpoints, oldest first: `checkpoints/step_NNNNNNNN` with their
    `hashes.json` (hidden staging or retired folders, and folders growclip did not write, excluded)."""
    folder = Path(run) / CHECKPOINTS
    return sorted(p for p in folder.glob("step_*") if is_growclip_checkpoint(p)) if folder.is_dir() else []


def _complete(directory: Path) -> bool:
    try:
        verify_hashes(directory)
    except CheckpointError:
        return False
    return is_growclip_checkpoint(directory, any_name=True)


def recover_leftovers(run: str | Path) -> None:
    """After a crash during a save: a complete hidden copy (the newer, staged one first) whose real
    name is free goes back into place; other staged or retired copies are deleted. Only the run's
    owner calls it (see `run_folder`), so no other process is writing them."""
    folder = Path(run) / CHECKPOINTS
    hidden = folder.glob(".step_*") if folder.is_dir() else ()
    found = [(match, p) for p in hidden if (match := LEFTOVER_NAME.fullmatch(p.name))]
    for match, leftover in sorted(found, key=lambda item: (item[0].group(1), item[0].group(2) != "tmp")):
        target = folder / match.group(1)
        if not target.exists() and _complete(leftover):
            os.replace(leftover, target)
            logger.warning("recovered %s: a complete checkpoint an interrupted save left hidden", target)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def delete_checkpoint(directory: Path) -> bool:
    """Delete a growclip checkpoint unless it holds files growclip did not write (then it is kept,
    with a warning); -> whether it was deleted."""
    foreign = foreign_files(directory)
    if foreign:
        logger.warning("kept %s: it holds files growclip did not write (%s)", directory, ", ".join(foreign[:5]))
        return False
    _delete_owned(directory)
    return True


def prune_checkpoints(run: str | Path, keep: int) -> None:
    """Keep the newest `keep` of the run's growclip checkpoints (all if 0)."""
    for old in checkpoints_of(run)[:-keep] if keep else []:
        delete_checkpoint(old)


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
    return model.eval(), tokenizer, read_state(directory)


def read_state(directory: Path) -> dict[str, Any]:
    """The JSON state saved beside the model ({} for a weights-only checkpoint)."""
    try:
        return json.loads((directory / STATE).read_text()) if (directory / STATE).is_file() else {}
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{directory / STATE}: not valid JSON ({err})") from None


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
