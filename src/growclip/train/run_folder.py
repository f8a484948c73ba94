"""A run folder has one owner: the process that holds its lock (`growclip.run_lock`) writes there,
and no other. Under torchrun rank 0 holds it.

Claiming also settles what may happen to what the folder already holds: a run there is continued
only with `--resume`, and replaced only with `--overwrite`, which deletes only what growclip wrote.
Nothing is written before the settings are checked: `train_config.json` is written by `start`, once
the model and data have been opened, so a start that fails leaves an existing run's file as it was.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from growclip.checkpoint.files import CHECKPOINTS, EVAL_RESULTS, checkpoints_of, delete_checkpoint, recover_leftovers
from growclip.checkpoint.manager import saved_settings_of
from growclip.run_lock import RunFolderError, RunLock
from growclip.runtime import ensure_writable
from growclip.train.config import TrainConfig
from growclip.train.metrics import METRICS, TENSORBOARD_DIR

SETTINGS = "train_config.json"
STREAM_RECORDS = "stream.json"
RUN_FILES = (SETTINGS, METRICS, EVAL_RESULTS, STREAM_RECORDS)  # what a run writes beside its checkpoints
logger = logging.getLogger(__name__)


class RunFolder:
    """The run folder of one training process: claimed (locked and checked) before anything is
    written, `start`ed once the run's settings and inputs are known good, released at the end.
    Processes other than rank 0 pass `owner=False` and neither lock nor write."""

    def __init__(self, config: TrainConfig, owner: bool = True) -> None:
        self.config, self.path, self.owner = config, Path(config.run.output), owner
        self.lock = RunLock(self.path)
        self.created = self.started = False

    def claim(self) -> RunFolder:
        """Lock the folder, put back a checkpoint an interrupted save left hidden, and refuse to
        replace a run there unless `--resume` continues it or `--overwrite` asks for a new one."""
        if not self.owner:
            return self
        self.created = not self.path.exists()
        ensure_writable(self.path)
        self.lock.acquire()
        try:
            recover_leftovers(self.path)
            if not (self.config.run.overwrite or self._continues()):
                held = self.held_run()
                if held:
                    raise RunFolderError(f"--output {self.path} already holds a run ({held}); continue it with "
                                         f"--resume latest, or replace it with --overwrite (deletes its checkpoints, "
                                         f"metrics and evaluation), or choose another --output")
        except BaseException:
            self.release()
            raise
        return self

    def _continues(self) -> bool:
        """`--resume latest` (continue, or start when there is nothing yet), or a checkpoint of this folder."""
        resume = self.config.run.resume
        return resume == "latest" or (resume is not None and Path(resume).resolve().is_relative_to(
            self.path.resolve()))

    def held_run(self) -> str:
        """What says a run lives here ('' if none): its newest checkpoint and the files it wrote."""
        found = [name for name in RUN_FILES if (self.path / name).is_file()]
        checkpoints = checkpoints_of(self.path)
        if checkpoints:
            found.insert(0, f"{CHECKPOINTS}/{checkpoints[-1].name}")
        return ", ".join(found)

    def _delete_run(self) -> None:
        """`--overwrite`: growclip's checkpoints, run files and TensorBoard events go; anything else stays."""
        held = self.held_run()
        for checkpoint in checkpoints_of(self.path):
            delete_checkpoint(checkpoint)
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for events in (self.path / TENSORBOARD_DIR).glob("events.out.tfevents.*"):
            events.unlink()
        if held:
            logger.info("--overwrite: deleted the run in %s (%s)", self.path, held)

    def start(self) -> None:
        """The run is set up: `--overwrite` deletes the run it replaces only now, so that a start that
        fails keeps it; then the settings are recorded (atomically)."""
        self.started = True
        if self.owner and self.config.run.overwrite:
            self._delete_run()
        if self.owner:
            staging = self.path / f".{SETTINGS}.tmp{os.getpid()}"
            staging.write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            os.replace(staging, self.path / SETTINGS)

    def release(self) -> None:
        """Unlock; a folder this claim created for a run that never started is removed again."""
        if not self.owner:
            return
        self.lock.release()
        if self.created and not self.started and self.path.is_dir():
            self.lock.path.unlink(missing_ok=True)
            if not any(self.path.iterdir()):
                self.path.rmdir()

    def __enter__(self) -> RunFolder:
        return self.claim()

    def __exit__(self, *exc: object) -> None:
        self.release()


def saved_settings(resume: str, output: str | Path) -> dict[str, Any]:
    """The settings a run folder's run was started with, for `--resume` to continue with: those of the
    checkpoint it names (or the newest), else the run's `train_config.json`; {} for a checkpoint of
    another folder (a new run starts from its weights, under the settings given) or none at all."""
    output = Path(output)
    try:
        checkpoint, settings = saved_settings_of(output if resume == "latest" else resume)
    except (ValueError, OSError):
        checkpoint, settings = None, {}
    if checkpoint is not None and not checkpoint.resolve().is_relative_to(output.resolve()):
        return {}
    if not settings and (output / SETTINGS).is_file():
        try:
            settings = json.loads((output / SETTINGS).read_text())
        except ValueError:
            settings = {}
    return settings if isinstance(settings, dict) else {}
