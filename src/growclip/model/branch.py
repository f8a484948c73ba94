"""MS-CLIP's efficient parallel branch: a light conv path on the raw image, fed into the
transformer's patch grid through lateral adapters."""

from __future__ import annotations

import torch
from torch import nn

from growclip.model.axes import Axes, fixed, layer_norm, residual_out
from growclip.model.layers import ChannelLayerNorm


class BranchStage(nn.Module):
    """Residual depthwise-separable conv at the patch-grid resolution."""

    SILENT = ("pointwise.weight", "pointwise.bias")  # zero: the identity

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.act = nn.GELU()
        self.pointwise = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pointwise(self.act(self.depthwise(x)))  # (B, C, g, g)


class LateralAdapter(nn.Module):
    """Depthwise + pointwise conv on the branch, depthwise conv on the patch grid, summed, LN."""

    SILENT = ("norm.weight",)  # zero gain: adds nothing to the patch tokens

    def __init__(self, branch_width: int, width: int) -> None:
        super().__init__()
        self.branch_depthwise = nn.Conv2d(branch_width, branch_width, 3, padding=1, groups=branch_width)
        self.branch_pointwise = nn.Conv2d(branch_width, width, 1)
        self.grid_depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.norm = ChannelLayerNorm(width)

    def growth_axes(self) -> dict[str, Axes]:
        """The branch's own channels stay; what it writes into the residual stream widens with it."""
        return {**fixed(self.branch_depthwise, "branch_depthwise"), "branch_pointwise.weight": residual_out(),
                "branch_pointwise.bias": residual_out(), "grid_depthwise.weight": residual_out(),
                "grid_depthwise.bias": residual_out(), **layer_norm("norm")}

    def forward(self, grid: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        # grid: (B, W, g, g), branch: (B, C, g, g) -> (B, W, g, g)
        lateral = self.branch_pointwise(self.branch_depthwise(branch))
        return self.norm(self.grid_depthwise(grid) + lateral)


class ParallelBranch(nn.Module):
    """One branch stage and one adapter per transformer block on the image path."""

    def __init__(self, width: int, branch_width: int, patch_size: int, layers: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, branch_width, kernel_size=patch_size, stride=patch_size), nn.GELU()
        )
        self.stages = nn.ModuleList(BranchStage(branch_width) for _ in range(layers))
        self.adapters = nn.ModuleList(LateralAdapter(branch_width, width) for _ in range(layers))

    def growth_axes(self) -> dict[str, Axes]:
        return {**fixed(self.stem, "stem"), **fixed(self.stages, "stages")}

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Branch output per image-path block: list of (B, C, g, g)."""
        x = self.stem(images)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def adapt(self, layer: int, tokens: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """Add the adapter's output to the patch tokens (the class token is left as is)."""
        batch, _, width = tokens.shape
        grid_size = branch.shape[-1]
        grid = tokens[:, 1:].transpose(1, 2).reshape(batch, width, grid_size, grid_size)
        lateral = self.adapters[layer](grid, branch).flatten(2).transpose(1, 2)  # (B, g*g, W)
        return torch.cat([tokens[:, :1], tokens[:, 1:] + lateral], dim=1)  # (B, N, W)
