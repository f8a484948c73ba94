"""The dynamic growth space: children of the current model one or two operators away, within a
parameter budget that grows with the data seen, plus "do not grow".

Default budget rule: at most `params_per_pair` (20) parameters per training pair seen so far, so
that early steps, with little data, do not buy capacity they cannot train. On the embedded corpus
the compute-optimal size grows with compute but stays well inside that ratio (benchmarks/RESULTS.md,
"The compute-optimal frontier": at most 0.012 M parameters up to 1 TFLOP, 0.18 M at 30 TFLOP).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from growclip.growth.base import GrowthError
from growclip.growth.grow import grown_config
from growclip.model.config import ModelConfig
from growclip.model.cost import model_cost, train_flops_per_sample

PARAMS_PER_PAIR = 20.0
# Narrower heads than this are not offered. 16, not 32: two 16-dim heads of the 32-wide start model
# paid on every seed in R@1 and held-out loss (benchmarks/RESULTS.md, growth vs fixed).
MIN_HEAD_DIM = 16


def growth_label(ops: tuple[str, ...], momentum: float) -> str:
    """How a growth step is named everywhere (search, decision, logs): "keep", or its operators and
    the PIM momentum, e.g. `width=64 shared_layers+1 (m=0.9)`."""
    return "keep" if not ops else f"{' '.join(ops)} (m={momentum:g})"


@dataclass(frozen=True)
class Candidate:
    ops: tuple[str, ...] = ()  # () = do not grow
    momentum: float = 1.0

    @property
    def label(self) -> str:
        return growth_label(self.ops, self.momentum)


def single_ops(config: ModelConfig, min_head_dim: int = MIN_HEAD_DIM) -> list[str]:
    """One step along each dimension: double width, MLP ratio +2, one block per tower, one shared
    block, sharing the top blocks (when a tower keeps one), twice the heads (while each head keeps
    `min_head_dim` dims)."""
    ops = [f"width={2 * config.width}", f"mlp_ratio={config.mlp_ratio + 2:g}", "vision_layers+1", "text_layers+1",
           "shared_layers+1"]
    if config.vision_layers > 1 and config.text_layers > 1:
        ops.append("share")
    if config.width % (2 * config.heads) == 0 and config.head_dim >= 2 * min_head_dim:
        ops.append(f"heads={2 * config.heads}")
    return ops


def growth_space(config: ModelConfig, max_params: float, momenta: tuple[float, ...] = (1.0,),
                 min_head_dim: int = MIN_HEAD_DIM) -> list[Candidate]:
    """"keep", then every single operator and every pair with width growth that fits the budget,
    cheapest (training FLOPs per pair) first, so a search that cannot afford them all drops the dearest."""
    singles = single_ops(config, min_head_dim)
    chains = [(op,) for op in singles] + [pair for pair in combinations(singles, 2) if pair[0].startswith("width")]
    priced = []
    for ops in chains:
        try:
            grown = grown_config(config, ops)
        except GrowthError:
            continue
        if model_cost(grown).params <= max_params:
            priced.append((train_flops_per_sample(grown), ops))
    priced.sort(key=lambda item: item[0])
    return [Candidate()] + [Candidate(ops, momentum) for _, ops in priced for momentum in momenta]


def params_budget(pairs_seen: int, params_per_pair: float = PARAMS_PER_PAIR) -> float:
    return params_per_pair * pairs_seen
