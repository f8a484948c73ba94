"""Transformer building blocks shared by the vision, text and shared encoders."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from growclip.model.axes import HIDDEN, IN, OUT, QKV, RESIDUAL, VALUE, Axes, layer_norm

IMAGE = "image"
TEXT = "text"


class Attention(nn.Module):
    """Multi-head self-attention through `F.scaled_dot_product_attention`."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def growth_axes(self) -> dict[str, Axes]:
        return {"qkv.weight": {0: (QKV, OUT), 1: (RESIDUAL, IN)}, "qkv.bias": {0: (QKV, OUT)},
                "proj.weight": {0: (RESIDUAL, OUT), 1: (VALUE, IN)}, "proj.bias": {0: (RESIDUAL, OUT)}}

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        batch, tokens, width = x.shape
        # (B, N, 3W) -> 3 x (B, H, N, W/H)
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if cpu_bf16_autocast(x):
            out = attention_by_matmuls(q, k, v, causal)  # (B, H, N, W/H)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, H, N, W/H)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))  # (B, N, W)


def cpu_bf16_autocast(x: torch.Tensor) -> bool:
    """On CPU under bf16 autocast, SDPA's flash kernel took 3-5x longer (forward + backward) than
    plain matmuls and a softmax on CLIP's short sequences (65 image tokens: 71 vs 14 ms at batch
    128, 4 heads of 64), so there attention is written out; elsewhere SDPA's fused kernels win."""
    return x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == \
        torch.bfloat16


def attention_by_matmuls(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Softmax attention as SDPA computes it, with the softmax in fp32. q, k, v: (B, H, N, D) -> (B, H, N, D)."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, H, N, N)
    if causal:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.float().softmax(-1).to(v.dtype) @ v


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation OpenAI's CLIP weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": nn.GELU, "quick_gelu": QuickGELU}


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int, activation: str = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = ACTIVATIONS[activation]()
        self.fc2 = nn.Linear(hidden, width)

    def growth_axes(self) -> dict[str, Axes]:
        return {"fc1.weight": {0: (HIDDEN, OUT), 1: (RESIDUAL, IN)}, "fc1.bias": {0: (HIDDEN, OUT)},
                "fc2.weight": {0: (RESIDUAL, OUT), 1: (HIDDEN, IN)}, "fc2.bias": {0: (RESIDUAL, OUT)}}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (B, N, W) -> (B, N, hidden) -> (B, N, W)


class Block(nn.Module):
    """Pre-LN transformer block serving one or more modalities.

    Attention and MLP weights are one set of tensors for every modality listed; each modality
    has its own LayerNorms (MS-CLIP's sharing split). Text is causal, images are not.
    """

    SILENT = ("attn.proj.weight", "attn.proj.bias", "mlp.fc2.weight", "mlp.fc2.bias")  # zero: the identity

    def __init__(self, width: int, heads: int, mlp_hidden: int, modalities: tuple[str, ...],
                 activation: str = "gelu") -> None:
        super().__init__()
        self.modalities = modalities
        self.ln_1 = nn.ModuleDict({m: nn.LayerNorm(width) for m in modalities})
        self.attn = Attention(width, heads)
        self.ln_2 = nn.ModuleDict({m: nn.LayerNorm(width) for m in modalities})
        self.mlp = Mlp(width, mlp_hidden, activation)

    def growth_axes(self) -> dict[str, Axes]:
        return {name: axes for m in self.modalities for norm in ("ln_1", "ln_2")
                for name, axes in layer_norm(f"{norm}.{m}").items()}

    def forward(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        # x: (B, N, W) -> (B, N, W)
        x = x + self.attn(self.ln_1[modality](x), causal=modality == TEXT)
        return x + self.mlp(self.ln_2[modality](x))


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) feature map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
