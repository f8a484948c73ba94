"""The growclip model: vision tower -> shared encoder -> head, and text tower -> shared encoder -> head.

A plain CLIP has `shared_layers = 0`; MS-CLIP has one modality-specific block per tower and the
rest shared. Everything is built from a `ModelConfig`, so growth can rebuild any architecture.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from growclip.model.axes import EMBED, FIXED, IN, OUT, RESIDUAL, Axes, layer_norm, residual_out
from growclip.model.branch import ParallelBranch
from growclip.model.config import ModelConfig
from growclip.model.layers import IMAGE, TEXT, Block
from growclip.model.stems import ConvStem, PatchEmbed

PAD_ID = 0
"""Text contract: token sequences are padded with 0 after the end-of-text token, which is pooled."""

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100)


def init_stds(config: ModelConfig, tower: str) -> dict[str, float]:
    """Standard deviations of the initial weights of a tower ("vision", "text" or "shared") by kind
    (see `CLIP._init_weights`)."""
    depth = max(config.vision_layers, config.text_layers) + config.shared_layers  # blocks on the longest path
    width = config.tower(tower).width
    return {
        "attn": width**-0.5,  # QKV
        "residual_out": width**-0.5 * (2 * depth) ** -0.5,  # attention output, MLP output
        "mlp_in": (2 * width) ** -0.5,
        "head": width**-0.5,  # projection into the joint embedding space
        "token_embedding": 0.02,
        "text_positions": 0.01,
        "image_tokens": width**-0.5,  # class token and image positions
    }


class VisionEmbedding(nn.Module):
    """Stem, class token, learned positions and the pre-transformer LayerNorm (as in CLIP)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width = config.vision.width
        stem_class = ConvStem if config.stem == "conv" else PatchEmbed
        self.stem = stem_class(width, config.patch_size)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(config.image_tokens, width))
        self.ln_pre = nn.LayerNorm(width)

    def growth_axes(self) -> dict[str, Axes]:
        return {"class_embedding": residual_out(), "positional_embedding": residual_out(1), **layer_norm("ln_pre")}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid = self.stem(images)  # (B, W, g, g)
        patches = grid.flatten(2).transpose(1, 2)  # (B, g*g, W)
        cls = self.class_embedding.expand(patches.shape[0], 1, -1)  # (B, 1, W)
        tokens = torch.cat([cls, patches], dim=1) + self.positional_embedding  # (B, N, W)
        return self.ln_pre(tokens)


class TextEmbedding(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.text.width)
        self.positional_embedding = nn.Parameter(torch.zeros(config.context_length, config.text.width))

    def growth_axes(self) -> dict[str, Axes]:
        return {"token_embedding.weight": residual_out(1), "positional_embedding": residual_out(1)}

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # (B, L) -> (B, L, W)
        return self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]


class Head(nn.Module):
    """Final LayerNorm and linear projection into the joint embedding space."""

    def __init__(self, width: int, embed_dim: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim, bias=False)

    def growth_axes(self) -> dict[str, Axes]:
        return {**layer_norm("ln"), "proj.weight": {0: (EMBED, OUT), 1: (RESIDUAL, IN)}}

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(self.ln(pooled))  # (B, W) -> (B, E)


def blocks(config: ModelConfig, tower: str, modalities: tuple[str, ...]) -> nn.ModuleList:
    shape = config.tower(tower)
    return nn.ModuleList(Block(shape.width, shape.heads, shape.mlp_hidden, modalities, config.activation)
                         for _ in range(shape.layers))


class CLIP(nn.Module):
    # which tower each part belongs to: the widths its layers declare (`growth_axes`) are that tower's
    GROWTH_TOWERS: ClassVar[dict[str, str]] = {
        "vision_embed": "vision", "vision_blocks": "vision", "branch": "vision", "image_head": "vision",
        "text_embed": "text", "text_blocks": "text", "text_head": "text", "shared_blocks": "shared"}

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_embed = VisionEmbedding(config)
        self.vision_blocks = blocks(config, "vision", (IMAGE,))
        self.text_embed = TextEmbedding(config)
        self.text_blocks = blocks(config, "text", (TEXT,))
        self.shared_blocks = blocks(config, "shared", (IMAGE, TEXT))
        self.branch = (
            ParallelBranch(config.vision.width, config.branch_width, config.patch_size, config.image_path_layers)
            if config.parallel_branch
            else None
        )
        self.image_head = Head(config.vision.width, config.embed_dim)
        self.text_head = Head(config.text.width, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
        self.grad_checkpointing = False
        self._init_weights()

    def growth_axes(self) -> dict[str, Axes]:
        return {"logit_scale": FIXED}

    def _init_weights(self) -> None:
        """CLIP's width-scaled initialisation (OpenAI CLIP, open_clip's text tower), for every block.

        A fixed N(0, 0.02) is far too small at these widths: the model sat at chance loss for its
        first ~100 steps and ended 15-30 points of zero-shot top-1 lower. Attention inputs and the
        heads ~ width^-0.5 keep unit-variance activations; residual outputs are further scaled by
        (2 x depth)^-0.5 so the residual stream does not grow with depth; convs keep PyTorch's default.
        """
        std = {tower: init_stds(self.config, tower) for tower in ("vision", "text", "shared")}
        for tower, tower_blocks in (("vision", self.vision_blocks), ("text", self.text_blocks),
                                    ("shared", self.shared_blocks)):
            for block in tower_blocks:
                for linear, kind in ((block.attn.qkv, "attn"), (block.attn.proj, "residual_out"),
                                     (block.mlp.fc1, "mlp_in"), (block.mlp.fc2, "residual_out")):
                    nn.init.normal_(linear.weight, std=std[tower][kind])
                    nn.init.zeros_(linear.bias)
        nn.init.normal_(self.image_head.proj.weight, std=std["vision"]["head"])
        nn.init.normal_(self.text_head.proj.weight, std=std["text"]["head"])
        nn.init.normal_(self.text_embed.token_embedding.weight, std=std["text"]["token_embedding"])
        nn.init.normal_(self.text_embed.positional_embedding, std=std["text"]["text_positions"])
        nn.init.normal_(self.vision_embed.class_embedding, std=std["vision"]["image_tokens"])
        nn.init.normal_(self.vision_embed.positional_embedding, std=std["vision"]["image_tokens"])

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Keep only each block's input for the backward pass and recompute the rest: activation
        memory of one block instead of all, for one more forward pass (open_clip's switch)."""
        self.grad_checkpointing = enable

    def _run_block(self, block: Block, x: torch.Tensor, modality: str) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, x, modality, use_reentrant=False)
        return block(x, modality)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        # images: (B, 3, S, S) -> (B, E)
        x = self.vision_embed(images)  # (B, N, W)
        branch = self.branch.features(images) if self.branch is not None else None
        for layer, block in enumerate(chain(self.vision_blocks, self.shared_blocks)):
            if branch is not None:
                x = self.branch.adapt(layer, x, branch[layer])
            x = self._run_block(block, x, IMAGE)
        features = self.image_head(x[:, 0])  # class token
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        # tokens: (B, L) int64, 0-padded after end-of-text -> (B, E)
        x = self.text_embed(tokens)  # (B, L, W)
        for block in chain(self.text_blocks, self.shared_blocks):
            x = self._run_block(block, x, TEXT)
        end_of_text = tokens.ne(PAD_ID).sum(dim=1) - 1  # (B,)
        features = self.text_head(x[torch.arange(x.shape[0], device=x.device), end_of_text])
        return F.normalize(features, dim=-1) if normalize else features

    def scale(self) -> torch.Tensor:
        """Temperature as used in the loss: exp(logit_scale), clamped at 100."""
        return self.logit_scale.clamp(max=LOGIT_SCALE_MAX).exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # -> image features (B, E), text features (B, E), scalar logit scale
        return self.encode_image(images), self.encode_text(tokens), self.scale()
