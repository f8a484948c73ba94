"""Composite growth: several operators in one go, then PIM once on the final architecture."""

from __future__ import annotations

from collections.abc import Sequence

from growclip.growth.base import GrowthOp
from growclip.growth.parse import parse_op
from growclip.growth.pim import inherit_with_momentum
from growclip.growth.state import GrowthState
from growclip.model.clip import CLIP
from growclip.model.config import ModelConfig
from growclip.model.factory import create_model


def _ops(ops: Sequence[GrowthOp | str]) -> list[GrowthOp]:
    return [parse_op(op) if isinstance(op, str) else op for op in ops]


def grown_config(config: ModelConfig, ops: Sequence[GrowthOp | str]) -> ModelConfig:
    for op in _ops(ops):
        config = op.grown_config(config)
    return config


def is_exact(config: ModelConfig, ops: Sequence[GrowthOp | str]) -> bool:
    """Does the chain of operators preserve the function (before PIM)?"""
    exact = True
    for op in _ops(ops):
        exact = exact and op.exact(config)
        config = op.grown_config(config)
    return exact


def grow_state(state: GrowthState, ops: Sequence[GrowthOp | str], momentum: float = 1.0, seed: int = 0
               ) -> GrowthState:
    """Apply `ops` in order, then PIM with `momentum`. `seed` draws the fresh initialisations
    (brand-new units, and what PIM mixes in), so growth is deterministic."""
    if not 0 <= momentum <= 1:
        raise ValueError(f"PIM momentum must be in [0, 1], got {momentum}")
    for op in _ops(ops):
        state = op.apply(state, create_model(op.grown_config(state.config), seed))
    return state if momentum == 1 else inherit_with_momentum(state, create_model(state.config, seed), momentum)


def grow(model: CLIP, ops: Sequence[GrowthOp | str], momentum: float = 1.0, seed: int = 0) -> CLIP:
    """The grown model (weights only, in `model`'s mode and on its device). To carry an optimizer's
    moments as well, use `grow_state(GrowthState.capture(model, optimizer), ...)`."""
    state = grow_state(GrowthState.capture(model), ops, momentum, seed)
    return state.build_model().to(next(model.parameters()).device).train(model.training)
