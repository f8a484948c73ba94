"""The dynamic growth space: children of the current model one or two operators away, within a
parameter budget that grows with the data seen, plus "do not grow".

Default budget rule: at most `params_per_pair` (20) non-embedding parameters per training pair seen so
far, so that early steps, with little data, do not buy capacity they cannot train. Token and position
embeddings are left out of the count (as Kaplan et al. count model size): an imported CLIP's 49,408-token
embedding would otherwise exceed every budget by itself. On the embedded corpus
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
    `min_head_dim` dims). Towers of their own shapes (an imported CLIP) take width, MLP and head
    steps each on its own, and no shared block."""
    prefixes = ("vision_", "text_") if config.towers_differ else ("",)
    shapes = {prefix: config.tower(prefix.rstrip("_") or "text") for prefix in prefixes}
    ops = [op for prefix, shape in shapes.items()
           for op in (f"{prefix}width={2 * shape.width}", f"{prefix}mlp_ratio={shape.mlp_ratio + 2:g}")]
    ops += ["vision_layers+1", "text_layers+1"]
    if not config.towers_differ:
        ops.append("shared_layers+1")
        if config.vision_layers > 1 and config.text_layers > 1:
            ops.append("share")
    ops += [f"{prefix}heads={2 * shape.heads}" for prefix, shape in shapes.items()
            if shape.width % (2 * shape.heads) == 0 and shape.head_dim >= 2 * min_head_dim]
    return ops


def growth_space(config: ModelConfig, max_params: float, momenta: tuple[float, ...] = (1.0,),
                 min_head_dim: int = MIN_HEAD_DIM) -> list[Candidate]:
    """"keep", then every single operator and every pair with width growth that fits the budget,
    cheapest (training FLOPs per pair) first, so a search that cannot afford them all drops the dearest."""
    singles = single_ops(config, min_head_dim)
    chains = [(op,) for op in singles] + [pair for pair in combinations(singles, 2)
                                          if pair[0].startswith(("width", "vision_width", "text_width"))]
    priced = []
    for ops in chains:
        try:
            grown = grown_config(config, ops)
        except GrowthError:
            continue
        if model_cost(grown).non_embedding_params <= max_params:
            priced.append((train_flops_per_sample(grown), ops))
    priced.sort(key=lambda item: item[0])
    return [Candidate()] + [Candidate(ops, momentum) for _, ops in priced for momentum in momenta]


def params_budget(pairs_seen: int, params_per_pair: float = PARAMS_PER_PAIR) -> float:
    return params_per_pair * pairs_seen
