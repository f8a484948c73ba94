"""Model: config, layers, the CLIP / MS-CLIP / shared-encoder model, its factory and its cost."""

from growclip.model.clip import CLIP, PAD_ID
from growclip.model.config import ConfigError, ModelConfig
from growclip.model.cost import ModelCost, model_cost, train_flops_per_sample
from growclip.model.factory import create_model, list_presets, load_config

__all__ = [
    "CLIP", "PAD_ID", "ConfigError", "ModelConfig", "ModelCost", "create_model", "list_presets",
    "load_config", "model_cost", "train_flops_per_sample",
]
