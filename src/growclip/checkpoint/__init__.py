"""Checkpoints: folders written whole or not at all (`files`), composed from the state of a run's
owners (`manager`)."""

from growclip.checkpoint.files import (
    EVAL_RESULTS,
    CheckpointError,
    checkpoints_of,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from growclip.checkpoint.manager import (
    Checkpointer,
    Progress,
    SavedRun,
    Snapshot,
    StateDict,
    Stateful,
    read_checkpoint,
    restore,
    write_checkpoint,
)

__all__ = ["EVAL_RESULTS", "CheckpointError", "Checkpointer", "Progress", "SavedRun", "Snapshot", "StateDict",
           "Stateful", "checkpoints_of", "load_checkpoint", "read_checkpoint", "resolve_checkpoint", "restore",
           "save_checkpoint", "write_checkpoint"]
