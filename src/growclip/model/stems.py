"""Image stems: turn pixels into the patch-token grid the vision tower works on."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from growclip.model.axes import IN, OUT, RESIDUAL, Axes, batch_norm, residual_out


class PatchEmbed(nn.Module):
    """ViT patchify: one non-overlapping conv with kernel = stride = patch size."""

    def __init__(self, width: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)

    def growth_axes(self) -> dict[str, Axes]:
        return {"proj.weight": residual_out()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images)  # (B, 3, S, S) -> (B, W, S/p, S/p)


def conv_stem_channels(width: int, patch_size: int) -> list[int]:
    """Output channels of each stride-2 stage; the last is `width`, earlier ones halve."""
    stages = patch_size.bit_length() - 1  # log2(patch_size)
    return [max(width >> (stages - 1 - i), 1) for i in range(stages)]


def stem_space(stage: int, stages: int) -> str:
    """The growth space of conv-stem stage `stage`'s channels: the last stage's are the residual width."""
    return RESIDUAL if stage == stages - 1 else f"stem{stage}"


class ResidualConvStage(nn.Module):
    """Stride-2 basic residual block (two 3x3 conv-BN, 1x1 strided shortcut)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.bn_shortcut = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C_in, H, W) -> (B, C_out, H/2, W/2)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + self.bn_shortcut(self.shortcut(x)))


class ConvStem(nn.Module):
    """MS-CLIP early specialisation: 3x3 stride-2 conv-BN-ReLU, then residual stride-2 stages."""

    def __init__(self, width: int, patch_size: int) -> None:
        super().__init__()
        channels = conv_stem_channels(width, patch_size)
        self.first = nn.Sequential(
            nn.Conv2d(3, channels[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(),
        )
        self.stages = nn.Sequential(
            *(ResidualConvStage(c_in, c_out) for c_in, c_out in pairwise(channels))
        )

    def growth_axes(self) -> dict[str, Axes]:
        count = len(self.stages) + 1
        axes = {"first.0.weight": {0: (stem_space(0, count), OUT)}, **batch_norm("first.1", stem_space(0, count))}
        for index in range(len(self.stages)):
            read, out = stem_space(index, count), stem_space(index + 1, count)
            prefix = f"stages.{index}"
            axes |= {f"{prefix}.conv1.weight": {0: (out, OUT), 1: (read, IN)},
                     f"{prefix}.conv2.weight": {0: (out, OUT), 1: (out, IN)},
                     f"{prefix}.shortcut.weight": {0: (out, OUT), 1: (read, IN)}}
            for norm in ("bn1", "bn2", "bn_shortcut"):
                axes |= batch_norm(f"{prefix}.{norm}", out)
        return axes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.stages(self.first(images))  # (B, 3, S, S) -> (B, W, S/p, S/p)
