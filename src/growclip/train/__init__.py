"""Training: the one entry (`train`), the loop, growing runs, run state and metrics."""

from growclip.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from growclip.train.config import TrainConfig
from growclip.train.run import train
from growclip.train.start import TrainResult

__all__ = ["CheckpointError", "TrainConfig", "TrainResult", "load_checkpoint", "save_checkpoint", "train"]
