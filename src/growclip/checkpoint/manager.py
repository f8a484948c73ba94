"""One run's checkpoints, composed from the state of their owners.

Every stateful part of a run (optimizer moments, schedule, loss scaler, data position, RNGs, a
growing run's stream progress and search) is an owner with `state_dict()` / `load_state_dict()`.
The checkpointer keeps each owner's state under its name, tensors in `trainer.safetensors` as
"<owner>.<key>" and everything else in `state.json`, with the run's `Progress` and settings beside
them, and hands each owner its part back. Nothing else knows the layout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import torch

from growclip.checkpoint.files import (
    TRAINER,
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    load_extra_tensors,
    load_trainer_tensors,
    prune_checkpoints,
    read_state,
    resolve_checkpoint,
    save_checkpoint,
)
from growclip.data.tokenizer import Tokenizer
from growclip.model.clip import CLIP

SETTINGS = "train_config"  # the run's settings, as `TrainConfig.to_dict()` gives them
logger = logging.getLogger(__name__)


StateDict = dict[str, Any]  # an owner's state, as PyTorch's state_dict(): tensors and JSON values by key


class Stateful(Protocol):
    def state_dict(self) -> StateDict: ...

    def load_state_dict(self, state: StateDict) -> None: ...


@dataclass
class Snapshot:
    """An owner whose state is already taken: what a run saves of a part it is not training (the
    RNG state a hand-grown checkpoint carries over, say)."""

    state: StateDict = field(default_factory=dict)

    def state_dict(self) -> StateDict:
        return self.state

    def load_state_dict(self, state: StateDict) -> None:
        self.state = state


@dataclass(frozen=True)
class Progress:
    """Where a run stood when it saved."""

    step: int  # steps into the schedule being trained; 0 between a growing run's chunks
    global_step: int  # optimizer steps of the whole run (the checkpoint's name)
    samples: int
    processes: int  # of the torchrun job that saved it


@dataclass(frozen=True)
class SavedRun:
    """A checkpoint as read: the model and tokenizer, and what the run saved beside them."""

    path: Path
    model: CLIP  # in eval mode
    tokenizer: Tokenizer
    progress: Progress | None  # None: weights only (an imported or exported model), no run to continue
    parts: dict[str, Any]  # each owner's JSON part (and any other record kept in state.json), by name

    @property
    def settings(self) -> dict[str, Any]:
        return self.parts.get(SETTINGS, {})

    @property
    def resumable(self) -> bool:
        return self.progress is not None and (self.path / TRAINER).is_file()

    def has(self, owner: str) -> bool:
        return owner in self.parts or (self.resumable and any(name.startswith(f"{owner}.") for name in self._tensors))

    def part(self, owner: str) -> StateDict:
        """An owner's state as it gave it: its JSON part and its tensors."""
        if not self.has(owner):
            raise CheckpointError(f"{self.path}: the training state lacks {owner!r}; not a resumable checkpoint")
        prefix = f"{owner}."
        tensors = {name[len(prefix):]: t for name, t in self._tensors.items() if name.startswith(prefix)}
        return {**self.parts.get(owner, {}), **tensors}

    def extra(self, name: str) -> dict[str, torch.Tensor]:
        """A further safetensors file saved with the checkpoint (a search's contender)."""
        return load_extra_tensors(self.path, name)

    @cached_property
    def _tensors(self) -> dict[str, torch.Tensor]:
        return load_trainer_tensors(self.path) if self.progress is not None else {}


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> SavedRun:
    """A checkpoint folder, or a run folder's newest checkpoint."""
    directory = resolve_checkpoint(path)
    model, tokenizer, state = load_checkpoint(directory, device)
    progress = None
    if "step" in state:  # the older a checkpoint, the fewer of these it has
        progress = Progress(state["step"], state.get("global_step", state["step"]), state.get("samples", 0),
                            state.get("processes", 1))
    names = {f.name for f in fields(Progress)}
    return SavedRun(directory, model, tokenizer, progress, {k: v for k, v in state.items() if k not in names})


def saved_settings_of(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(the checkpoint, the run settings it was saved under ({} if none)), read without loading its model."""
    directory = resolve_checkpoint(path)
    state = read_state(directory)
    settings = state.get(SETTINGS) if isinstance(state, dict) else None
    return directory, settings if isinstance(settings, dict) else {}


def write_checkpoint(directory: str | Path, model: CLIP, tokenizer: Tokenizer, progress: Progress | None,
                     owners: Mapping[str, Stateful], parts: dict[str, Any] | None = None,
                     extra: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Each owner's state under its name; `parts`: more JSON records kept as they are (settings);
    `extra`: more safetensors files by name. Resumable when it has a progress and owners."""
    json_parts, tensors = dict(parts or {}), {}
    for owner, stateful in owners.items():
        state = stateful.state_dict()
        owned = {f"{owner}.{key}": value for key, value in state.items() if isinstance(value, torch.Tensor)}
        tensors |= owned
        if len(owned) < len(state) or not owned:  # an empty state too: the owner was saved
            json_parts[owner] = {key: value for key, value in state.items() if not isinstance(value, torch.Tensor)}
    state = (asdict(progress) if progress else {}) | json_parts
    return save_checkpoint(directory, model, tokenizer, state, tensors if progress and owners else None, extra)


class Checkpointer:
    """A run folder's checkpoints: `checkpoints/step_NNNNNNNN`, the newest `keep` kept (all if 0)."""

    def __init__(self, run: str | Path, keep: int = 0) -> None:
        self.run, self.keep = Path(run), keep

    def path(self, global_step: int) -> Path:
        return checkpoint_path(self.run, global_step)

    def save(self, model: CLIP, tokenizer: Tokenizer, progress: Progress, owners: Mapping[str, Stateful],
             settings: dict[str, Any], extra: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
        path = write_checkpoint(self.path(progress.global_step), model, tokenizer, progress, owners,
                                {SETTINGS: settings}, extra)
        prune_checkpoints(self.run, self.keep)
        return path

    def latest(self) -> Path | None:
        try:
            return resolve_checkpoint(self.run)
        except CheckpointError:
            return None


def restore(saved: SavedRun, owners: Mapping[str, Stateful]) -> None:
    """Hand each owner its part of `saved` (an owner missing from it is an error)."""
    for owner, stateful in owners.items():
        stateful.load_state_dict(saved.part(owner))
