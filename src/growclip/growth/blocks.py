"""Depth growth: insert blocks (identity or copies) into a tower or the shared encoder, and turn
the top vision and text blocks into one shared block.

Identity insertion is exact: a new block's attention output projection and MLP output layer
are zero, so it adds nothing to the residual stream; its other weights are freshly initialised,
so gradients reach it at once. With the parallel branch, the new image-path block also gets an
identity branch stage (zero pointwise conv on a residual) and a silent lateral adapter (zero
LayerNorm gain). Copy insertion (stacking) duplicates an existing block with its moments: not
exact, but often a better start. Sharing averages the two blocks' attention and MLP (and their
moments) and keeps each one's LayerNorms for its modality: not exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from growclip.growth.base import GrowthError, GrowthOp
from growclip.growth.state import GrowthState
from growclip.model.branch import BranchStage, LateralAdapter
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.layers import Block

BLOCK_LISTS = {"vision": "vision_blocks", "text": "text_blocks", "shared": "shared_blocks"}
_INDEXED = re.compile(r"^(vision_blocks|text_blocks|shared_blocks|branch\.stages|branch\.adapters)\.(\d+)\.(.+)$")
_SILENT = {"blocks": Block.SILENT, "branch.stages": BranchStage.SILENT, "branch.adapters": LateralAdapter.SILENT}


@dataclass(frozen=True)
class Origin:
    names: tuple[str, ...] = ()  # old tensors averaged into this one; empty: brand new
    zero: bool = False  # a brand-new tensor that starts at zero


def rebuild(state: GrowthState, config: ModelConfig, fresh: CLIP, origin_of: Callable[[str], Origin]) -> GrowthState:
    """Assemble the grown state tensor by tensor. Brand-new parameters get no moments: the optimizer
    starts them afresh (step 0, bias-corrected), as for a new model; zero moments under the
    inherited step count would make their first updates several times the learning rate."""
    weights, moments = {}, {}
    for name, init in fresh.state_dict().items():
        origin = origin_of(name)
        if origin.names:
            weights[name] = _mean([state.weights[n] for n in origin.names])
            if all(n in state.moments for n in origin.names):
                stats = state.moments[origin.names[0]]
                moments[name] = {s: _mean([state.moments[n][s] for n in origin.names]) for s in stats}
        else:
            weights[name] = torch.zeros_like(init) if origin.zero else init.clone()
    return GrowthState(config, weights, moments, state.step)


def _mean(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0].clone() if len(tensors) == 1 else torch.stack(tensors).mean(dim=0)


def _silent(group: str, rest: str) -> bool:
    return rest in _SILENT["blocks" if group.endswith("blocks") else group]


@dataclass(frozen=True)
class Depth(GrowthOp):
    """`add` blocks into `tower` ("vision", "text" or "shared") at block index `at` (default: on top)."""

    tower: str
    add: int = 1
    at: int | None = None
    init: str = "identity"  # or "copy": duplicate the block below the insertion point

    @property
    def dimension(self) -> str:
        return f"{self.tower}_layers"

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        if self.tower not in BLOCK_LISTS or self.init not in ("identity", "copy") or self.add < 1:
            raise GrowthError(f"depth growth needs tower in {sorted(BLOCK_LISTS)}, init identity|copy and add >= 1; "
                              f"got {self.spec()}")
        layers = getattr(config, self.dimension)
        if not 0 <= self._at(config) <= layers:
            raise GrowthError(f"{self.dimension}: insert position {self.at} is outside 0..{layers}")
        if self.init == "copy" and layers == 0:
            raise GrowthError(f"{self.dimension}: there is no block to copy")
        if self.tower == "shared" and config.towers_differ:
            raise GrowthError(f"{self.dimension}: a shared block needs towers of one shape ({config.describe()})")
        return replace(config, **{self.dimension: layers + self.add})

    def _at(self, config: ModelConfig) -> int:
        return getattr(config, self.dimension) if self.at is None else self.at

    def exact(self, config: ModelConfig) -> bool:
        return self.init == "identity"

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        old = state.config
        at, source = self._at(old), max(self._at(old) - 1, 0)
        offsets = {BLOCK_LISTS[self.tower]: 0}
        if old.parallel_branch and self.tower != "text":  # the branch has one stage per image-path block
            image_offset = 0 if self.tower == "vision" else old.vision_layers
            offsets |= {"branch.stages": image_offset, "branch.adapters": image_offset}

        def origin_of(name: str) -> Origin:
            match = _INDEXED.match(name)
            if not match or match[1] not in offsets:
                return Origin((name,))
            group, index, rest = match[1], int(match[2]) - offsets[match[1]], match[3]
            if index < at or index >= at + self.add:
                old_index = index if index < at else index - self.add
                return Origin((f"{group}.{old_index + offsets[group]}.{rest}",))
            if self.init == "copy":
                return Origin((f"{group}.{source + offsets[group]}.{rest}",))
            return Origin(zero=_silent(group, rest))

        return rebuild(state, self.grown_config(old), fresh, origin_of)

    def spec(self) -> str:
        options = ("" if self.at is None else f",at={self.at}") + ("" if self.init == "identity" else ",init=copy")
        return f"{self.dimension}+{self.add}{options}"


@dataclass(frozen=True)
class Share(GrowthOp):
    """The top vision block and the top text block become the bottom shared block."""

    merge: str = "mean"  # attention + MLP from the "mean" of both, or from the "image" or "text" block

    dimension = "shared_layers"

    def grown_config(self, config: ModelConfig) -> ModelConfig:
        if config.vision_layers < 1 or config.text_layers < 1:
            raise GrowthError("share needs at least one vision and one text block")
        if self.merge not in ("mean", "image", "text"):
            raise GrowthError(f"share merge= must be mean, image or text, got {self.merge!r}")
        if config.towers_differ:
            raise GrowthError(f"share: a shared block needs towers of one shape ({config.describe()})")
        return replace(config, vision_layers=config.vision_layers - 1, text_layers=config.text_layers - 1,
                       shared_layers=config.shared_layers + 1)

    def exact(self, config: ModelConfig) -> bool:
        return False

    def apply(self, state: GrowthState, fresh: CLIP) -> GrowthState:
        old = state.config
        top = {"image": f"vision_blocks.{old.vision_layers - 1}", "text": f"text_blocks.{old.text_layers - 1}"}
        sources = (top["image"], top["text"]) if self.merge == "mean" else (top[self.merge],)

        def origin_of(name: str) -> Origin:
            match = _INDEXED.match(name)
            if not match or match[1] != "shared_blocks":
                return Origin((name,))
            index, rest = int(match[2]), match[3]
            if index > 0:
                return Origin((f"shared_blocks.{index - 1}.{rest}",))
            norm = re.match(r"ln_\d\.(image|text)\.", rest)
            if norm:  # each modality keeps its own LayerNorms
                return Origin((f"{top[norm[1]]}.{rest}",))
            return Origin(tuple(f"{source}.{rest}" for source in sources))

        return rebuild(state, self.grown_config(old), fresh, origin_of)

    def spec(self) -> str:
        return "share" + ("" if self.merge == "mean" else f",merge={self.merge}")
