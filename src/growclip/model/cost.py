"""Parameter count and FLOPs per sample of an architecture, without allocating its weights.

Growth search ranks candidate architectures by cost before building any of them. Parameters
are counted on the model itself built on the meta device (no memory, no initialisation), so a
new layer is counted as soon as it exists; FLOPs come from formulas that tests check against
`torch.utils.flop_counter`.

FLOPs count what the flop counter counts: 2 x multiply-adds of matmuls, convolutions and
attention (QK^T and AV, dense even when causal). Norms, activations, softmax and the batch-
dependent similarity matrix of the loss are left out (well under 2% at the preset sizes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import pairwise

import torch

from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig, TowerShape
from growclip.model.stems import conv_stem_channels


@dataclass(frozen=True)
class ModelCost:
    params: int
    image_flops: int
    text_flops: int
    embedding_params: int = 0  # token and position embeddings (Kaplan et al.'s split)

    @property
    def non_embedding_params(self) -> int:
        """What the blocks, stems and heads hold: the parameters that carry capacity. A CLIP vocabulary
        (49,408 tokens) would otherwise dominate every small model's count."""
        return self.params - self.embedding_params

    @property
    def forward_flops(self) -> int:
        """One image-text pair through both towers."""
        return self.image_flops + self.text_flops


@functools.cache
def parameter_count(config: ModelConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in CLIP(config).parameters())


def _conv_flops(out_positions: int, in_channels: int, out_channels: int, kernel: int, groups: int = 1) -> int:
    return 2 * out_positions * out_channels * (in_channels // groups) * kernel * kernel


def _block_flops(shape: TowerShape, tokens: int) -> int:
    w, h = shape.width, shape.mlp_hidden
    return 8 * tokens * w * w + 4 * tokens * w * h + 4 * tokens * tokens * w


def _stem_flops(c: ModelConfig) -> tuple[int, int]:
    """(forward FLOPs, FLOPs of the convs that read raw pixels)."""
    positions = c.grid_size**2
    if c.stem == "patch":
        flops = _conv_flops(positions, 3, c.vision.width, c.patch_size)
        return flops, flops
    channels = conv_stem_channels(c.vision.width, c.patch_size)
    side = c.image_size // 2
    pixel_flops = _conv_flops(side * side, 3, channels[0], 3)
    flops = pixel_flops
    for c_in, c_out in pairwise(channels):
        side //= 2
        flops += _conv_flops(side * side, c_in, c_out, 3) + _conv_flops(side * side, c_out, c_out, 3)
        flops += _conv_flops(side * side, c_in, c_out, 1)
    return flops, pixel_flops


def _branch_flops(c: ModelConfig) -> tuple[int, int]:
    """(forward FLOPs, FLOPs of the convs that read raw pixels) of the parallel branch."""
    if not c.parallel_branch:
        return 0, 0
    b, w, positions, layers = c.branch_width, c.vision.width, c.grid_size**2, c.image_path_layers
    stem_flops = _conv_flops(positions, 3, b, c.patch_size)
    stage_flops = _conv_flops(positions, b, b, 3, groups=b) + _conv_flops(positions, b, b, 1)
    adapter_flops = (_conv_flops(positions, b, b, 3, groups=b) + _conv_flops(positions, b, w, 1)
                     + _conv_flops(positions, w, w, 3, groups=w))
    return stem_flops + layers * (stage_flops + adapter_flops), stem_flops


def model_cost(c: ModelConfig) -> ModelCost:
    shared, e = c.tower("shared"), c.embed_dim
    image_flops = (_stem_flops(c)[0] + _branch_flops(c)[0] + c.vision_layers * _block_flops(c.vision, c.image_tokens)
                   + c.shared_layers * _block_flops(shared, c.image_tokens) + 2 * c.vision.width * e)
    text_flops = (c.text_layers * _block_flops(c.text, c.context_length)
                  + c.shared_layers * _block_flops(shared, c.context_length) + 2 * c.text.width * e)
    embeddings = (c.vocab_size + c.context_length) * c.text.width + c.image_tokens * c.vision.width
    return ModelCost(params=parameter_count(c), image_flops=image_flops, text_flops=text_flops,
                     embedding_params=embeddings)


def train_flops_per_sample(c: ModelConfig) -> int:
    """Forward + backward of one pair: backward costs twice the forward, except that the convs
    reading raw pixels need no gradient for their input."""
    return 3 * model_cost(c).forward_flops - _stem_flops(c)[1] - _branch_flops(c)[1]
