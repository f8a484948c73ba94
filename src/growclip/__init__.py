"""growclip: contrastive language-image pre-training whose model grows with its data."""

from growclip.data import EmbeddedCorpus, Tokenizer
from growclip.eval import evaluate
from growclip.growth import GrowthState, grow, grow_state
from growclip.model import CLIP, ModelConfig, create_model, list_presets, load_config, model_cost
from growclip.train import TrainConfig, load_checkpoint, save_checkpoint, train
from growclip.train.growing import train_stream

__version__ = "0.1.0"
__all__ = [
    "CLIP", "EmbeddedCorpus", "GrowthState", "ModelConfig", "Tokenizer", "TrainConfig", "create_model", "evaluate",
    "grow", "grow_state", "list_presets", "load_checkpoint", "load_config", "model_cost", "save_checkpoint", "train",
    "train_stream",
]
