"""Will it fit? Memory a model needs, estimated from its config before anything is allocated.

A growth operator with a typo'd count (`text_layers+99999`) or a config with width 2^20 would
otherwise take every byte of the machine or die in a terabyte allocation. The estimate counts
float32 weights, gradients and AdamW's two moments, plus the activations the backward pass keeps
(about 8 x width + 2 x MLP hidden floats per token per block, and the attention maps); it is
rough by design, within a factor of about two, and only refuses what cannot possibly fit.
"""

from __future__ import annotations

import os

import torch

from growclip.model.config import TOWERS, ConfigError, ModelConfig, TowerShape

BYTES = 4  # float32


def approx_params(config: ModelConfig) -> int:
    """Blocks, embeddings and positions: the parameters that can grow without bound."""
    blocks = sum(shape.layers * (4 * shape.width**2 + 2 * shape.width * shape.mlp_hidden)
                 for shape in map(config.tower, TOWERS))
    return (blocks + (config.vocab_size + config.context_length) * config.text.width
            + config.image_tokens * config.vision.width)


def activation_bytes(config: ModelConfig, batch_size: int, checkpointed: bool = False) -> int:
    """With gradient checkpointing the backward pass keeps each block's input and recomputes one
    block at a time."""
    def path(shape: TowerShape, tokens: int) -> int:
        per_block = tokens * (8 * shape.width + 2 * shape.mlp_hidden + shape.heads * tokens)
        if not checkpointed or not shape.layers:
            return shape.layers * per_block
        return shape.layers * tokens * shape.width + per_block

    shared = config.tower("shared")
    image = path(config.vision, config.image_tokens) + path(shared, config.image_tokens)
    text = path(config.text, config.context_length) + path(shared, config.context_length)
    return batch_size * (image + text) * BYTES


def required_bytes(config: ModelConfig, batch_size: int = 0, checkpointed: bool = False) -> int:
    """Training with AdamW (weights, gradients, two moments: four copies of the parameters; growth
    holds as many: the old state, the fresh draw, the grown weights and moments), plus the
    activations of a batch of `batch_size` (0: building or growing a model)."""
    return 4 * approx_params(config) * BYTES + activation_bytes(config, batch_size, checkpointed)


def available_bytes(device: torch.device | None = None) -> int | None:
    """Free memory of a CUDA device, or the machine's available RAM (None where it cannot be read)."""
    if device is not None and device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else None


def check_fits(config: ModelConfig, batch_size: int = 0, device: torch.device | None = None,
               checkpointed: bool = False) -> None:
    """A ConfigError naming the sizes when the estimate exceeds the available memory."""
    available = available_bytes(device)
    needed = required_bytes(config, batch_size, checkpointed)
    if available is not None and needed > available:
        what = f"at batch {batch_size}" if batch_size else "with its gradients and optimizer state"
        lighter = required_bytes(config, batch_size, checkpointed=True)
        hint = (f"; with gradient checkpointing ~{lighter / 2**30:,.1f} GiB"
                if batch_size and not checkpointed and lighter <= available else "")
        raise ConfigError(f"{config.describe()}: about {approx_params(config) / 1e6:,.0f} M parameters need "
                          f"~{needed / 2**30:,.1f} GiB {what}, more than the {available / 2**30:,.1f} GiB "
                          f"available{'' if device is None else f' on {device}'}{hint}")
