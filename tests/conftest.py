import pytest
import torch

from growclip.model import ModelConfig

TINY = dict(width=32, heads=2, mlp_ratio=2.0, embed_dim=16, image_size=16, patch_size=4, context_length=12,
            vocab_size=300, branch_width=8)


def tiny_config(**overrides) -> ModelConfig:
    """A model small enough for a unit test; any field can be overridden."""
    return ModelConfig(**{**TINY, "vision_layers": 1, "text_layers": 1, "shared_layers": 1, **overrides})


# The architectures every model test runs on: plain CLIP, shared encoder, MS-CLIP, each branch on/off.
ARCHITECTURES = {
    "clip": dict(vision_layers=2, text_layers=2, shared_layers=0),
    "clip-branch": dict(vision_layers=2, text_layers=2, shared_layers=0, parallel_branch=True),
    "shared": dict(vision_layers=1, text_layers=1, shared_layers=2),
    "msclip": dict(vision_layers=1, text_layers=1, shared_layers=2, stem="conv", parallel_branch=True),
    "msclip-nobranch": dict(vision_layers=1, text_layers=1, shared_layers=2, stem="conv"),
}


@pytest.fixture(params=sorted(ARCHITECTURES))
def architecture(request) -> ModelConfig:
    return tiny_config(**ARCHITECTURES[request.param])


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
