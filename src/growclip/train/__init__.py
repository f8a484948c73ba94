"""Training: loss, optimizer and schedule, the step, the loop, checkpoints and metrics."""

from growclip.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from growclip.train.config import TrainConfig
from growclip.train.loop import TrainResult, train

__all__ = ["CheckpointError", "TrainConfig", "TrainResult", "load_checkpoint", "save_checkpoint", "train"]
