"""Parameter count and FLOPs per sample, from the config alone (no module is built).

Growth search ranks candidate architectures by cost before building any of them, so these
formulas must match the real modules; tests check them against `torch.utils.flop_counter`.

FLOPs count what the flop counter counts: 2 x multiply-adds of matmuls, convolutions and
attention (QK^T and AV, dense even when causal). Norms, activations, softmax and the batch-
dependent similarity matrix of the loss are left out (well under 2% at the preset sizes).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from growclip.model.config import ModelConfig
from growclip.model.stems import conv_stem_channels


@dataclass(frozen=True)
class ModelCost:
    params: int
    image_flops: int
    text_flops: int

    @property
    def forward_flops(self) -> int:
        """One image-text pair through both towers."""
        return self.image_flops + self.text_flops


def _conv_flops(out_positions: int, in_channels: int, out_channels: int, kernel: int, groups: int = 1) -> int:
    return 2 * out_positions * out_channels * (in_channels // groups) * kernel * kernel


def _conv_params(in_channels: int, out_channels: int, kernel: int, groups: int = 1, bias: bool = True) -> int:
    return out_channels * (in_channels // groups) * kernel * kernel + (out_channels if bias else 0)


def _block_params(c: ModelConfig, modalities: int) -> int:
    w, h = c.width, c.mlp_hidden
    attention = 4 * w * w + 4 * w
    mlp = 2 * w * h + h + w
    layer_norms = 4 * w * modalities
    return attention + mlp + layer_norms


def _block_flops(c: ModelConfig, tokens: int) -> int:
    w, h = c.width, c.mlp_hidden
    return 8 * tokens * w * w + 4 * tokens * w * h + 4 * tokens * tokens * w


def _stem_params_and_flops(c: ModelConfig) -> tuple[int, int, int]:
    """(params, forward FLOPs, FLOPs of the convs that read raw pixels)."""
    positions = c.grid_size**2
    if c.stem == "patch":
        flops = _conv_flops(positions, 3, c.width, c.patch_size)
        return _conv_params(3, c.width, c.patch_size, bias=False), flops, flops
    channels = conv_stem_channels(c.width, c.patch_size)
    side = c.image_size // 2
    pixel_flops = _conv_flops(side * side, 3, channels[0], 3)
    params = _conv_params(3, channels[0], 3, bias=False) + 2 * channels[0]
    flops = pixel_flops
    for c_in, c_out in pairwise(channels):
        side //= 2
        params += _conv_params(c_in, c_out, 3, bias=False) + _conv_params(c_out, c_out, 3, bias=False)
        params += _conv_params(c_in, c_out, 1, bias=False) + 3 * 2 * c_out  # + three BatchNorms
        flops += _conv_flops(side * side, c_in, c_out, 3) + _conv_flops(side * side, c_out, c_out, 3)
        flops += _conv_flops(side * side, c_in, c_out, 1)
    return params, flops, pixel_flops


def _branch_params_and_flops(c: ModelConfig) -> tuple[int, int, int]:
    """(params, forward FLOPs, FLOPs of the convs that read raw pixels) of the parallel branch."""
    if not c.parallel_branch:
        return 0, 0, 0
    b, w, positions, layers = c.branch_width, c.width, c.grid_size**2, c.image_path_layers
    stem_flops = _conv_flops(positions, 3, b, c.patch_size)
    params = _conv_params(3, b, c.patch_size)
    flops = stem_flops
    stage_params = _conv_params(b, b, 3, groups=b) + _conv_params(b, b, 1)
    stage_flops = _conv_flops(positions, b, b, 3, groups=b) + _conv_flops(positions, b, b, 1)
    adapter_params = (_conv_params(b, b, 3, groups=b) + _conv_params(b, w, 1)
                      + _conv_params(w, w, 3, groups=w) + 2 * w)
    adapter_flops = (_conv_flops(positions, b, b, 3, groups=b) + _conv_flops(positions, b, w, 1)
                     + _conv_flops(positions, w, w, 3, groups=w))
    params += layers * (stage_params + adapter_params)
    flops += layers * (stage_flops + adapter_flops)
    return params, flops, stem_flops


def model_cost(c: ModelConfig) -> ModelCost:
    w, e = c.width, c.embed_dim
    stem_params, stem_flops, _ = _stem_params_and_flops(c)
    branch_params, branch_flops, _ = _branch_params_and_flops(c)
    head_params = 2 * w + w * e
    vision_params = stem_params + w + c.image_tokens * w + 2 * w + c.vision_layers * _block_params(c, 1)
    text_params = c.vocab_size * w + c.context_length * w + c.text_layers * _block_params(c, 1)
    params = (vision_params + text_params + c.shared_layers * _block_params(c, 2)
              + branch_params + 2 * head_params + 1)
    image_flops = (stem_flops + branch_flops + c.image_path_layers * _block_flops(c, c.image_tokens)
                   + 2 * w * e)
    text_flops = (c.text_layers + c.shared_layers) * _block_flops(c, c.context_length) + 2 * w * e
    return ModelCost(params=params, image_flops=image_flops, text_flops=text_flops)


def train_flops_per_sample(c: ModelConfig) -> int:
    """Forward + backward of one pair: backward costs twice the forward, except that the convs
    reading raw pixels need no gradient for their input."""
    cost = model_cost(c)
    pixel_flops = _stem_params_and_flops(c)[2] + _branch_params_and_flops(c)[2]
    return 3 * cost.forward_flops - pixel_flops
