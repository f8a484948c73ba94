"""Growth toward the compute-optimal size: a measured frontier says which architecture is best
for a given training compute; before each chunk the model grows, in one compound step, toward the
size that is best for the compute the run will have spent when the chunk ends.

The frontier is a ladder of rungs, each "from T TFLOP on, this architecture", read off fixed sizes
trained from scratch at several budgets (`python -m benchmarks.frontier`). growclip ships the
embedded corpus's (`frontiers/corpus.json`); give your own with `--frontier FILE`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from growclip.growth.base import GrowthError
from growclip.growth.decision import Decision
from growclip.growth.grow import grow_state, grown_config
from growclip.growth.policy import ChunkContext, GrowthPolicy
from growclip.growth.state import GrowthState
from growclip.model.config import ModelConfig
from growclip.model.cost import train_flops_per_sample
from growclip.runtime import derive_seed

CORPUS_FRONTIER = "corpus"  # the packaged frontier of the embedded corpus
TOWER_FIELDS = ("width", "heads", "mlp_ratio")  # growable per tower; width first: heads re-split the grown width
FIXED_FIELDS = ("patch_size", "image_size", "context_length", "vocab_size", "stem", "parallel_branch",
                "branch_width", "activation")  # no operator changes these


@dataclass(frozen=True)
class Rung:
    tflop: float  # from this much training compute on,
    model: ModelConfig  # this architecture is the compute-optimal one
    name: str = ""


@dataclass(frozen=True)
class ComputeFrontier:
    rungs: tuple[Rung, ...]  # by compute, ascending
    source: str = ""

    def __post_init__(self) -> None:
        if not self.rungs:
            raise GrowthError(f"frontier {self.source}: no rungs")
        if any(a.tflop >= b.tflop for a, b in zip(self.rungs, self.rungs[1:])):
            raise GrowthError(f"frontier {self.source}: rungs must be in ascending TFLOP, each once")

    @classmethod
    def load(cls, name_or_path: str | Path = CORPUS_FRONTIER) -> ComputeFrontier:
        """A JSON file {"rungs": [{"tflop": T, "name": ..., "model": {ModelConfig fields}}, ...]},
        or `corpus` for the packaged one."""
        if str(name_or_path) == CORPUS_FRONTIER:
            text, source = resources.files("growclip.growth").joinpath("frontiers/corpus.json").read_text(), "corpus"
        else:
            path = Path(name_or_path)
            if not path.is_file():
                raise GrowthError(f"frontier {path}: no such file (give a JSON file or {CORPUS_FRONTIER!r})")
            text, source = path.read_text(), str(path)
        try:
            rungs = [Rung(float(r["tflop"]), ModelConfig.from_dict(r["model"]), r.get("name", ""))
                     for r in json.loads(text)["rungs"]]
        except (KeyError, TypeError, ValueError) as err:
            raise GrowthError(f"frontier {source}: {err!r}; expected {{'rungs': [{{'tflop': T, 'model': {{...}}}}]}}"
                              ) from None
        return cls(tuple(rungs), source)


def ops_toward(current: ModelConfig, target: ModelConfig) -> list[str]:
    """The operators that grow `current` toward `target`: every dimension where the target is larger
    (none shrinks), towers by the shorthand while both models' towers agree, else one by one."""
    differing = [f for f in FIXED_FIELDS if getattr(current, f) != getattr(target, f)]
    if differing:
        raise GrowthError(f"no operator changes {', '.join(differing)}: {current.describe()} cannot grow into "
                          f"{target.describe()}")
    ops: list[str] = []
    per_tower = current.towers_differ or target.towers_differ
    for what in TOWER_FIELDS:
        for tower in (("vision", "text") if per_tower else ("vision",)):
            now, then = getattr(current.tower(tower), what), getattr(target.tower(tower), what)
            if then > now:
                ops.append(f"{tower + '_' if per_tower else ''}{what}={then:g}")
    if target.embed_dim > current.embed_dim:
        ops.append(f"embed_dim={target.embed_dim}")
    for part in ("vision", "text", "shared"):
        extra = getattr(target, f"{part}_layers") - getattr(current, f"{part}_layers")
        if extra > 0:
            ops.append(f"{part}_layers+{extra}")
    return ops


@dataclass
class TrackFrontier(GrowthPolicy):
    """Grow, before each chunk, toward the rung that is compute-optimal at the chunk's end: the last
    rung whose compute the run reaches if this chunk trains it (an anytime choice: the run does not
    know how long the stream will be). Nothing shrinks: past that rung, the model is kept."""

    frontier: ComputeFrontier
    momentum: float
    seed: int

    def decide_growth(self, state: GrowthState, context: ChunkContext) -> tuple[GrowthState, Decision]:
        def at_end(rung: Rung) -> float:
            grown = grown_config(state.config, ops_toward(state.config, rung.model))
            return context.flops_before + self._chunk_flops(context, grown)

        reached = [rung for rung in self.frontier.rungs if rung.tflop * 1e12 <= at_end(rung)]
        ops = ops_toward(state.config, reached[-1].model) if reached else []
        if not ops:
            return state, Decision(context.chunk, why="at or past the compute-optimal size")
        seed, rung = derive_seed(self.seed, context.chunk), reached[-1]
        why = f"{rung.name or rung.model.describe()} is compute-optimal from {rung.tflop:g} TFLOP"
        return grow_state(state, ops, self.momentum, seed), Decision(context.chunk, tuple(ops), self.momentum,
                                                                     why=why, seed=seed)

    @staticmethod
    def _chunk_flops(context: ChunkContext, model: ModelConfig) -> float:
        """The chunk's training compute if it trains `model`: the stream's budget, or its pairs at
        that size (then a larger model makes the chunk dearer, and the rule picks the largest rung
        that this chunk's own compute makes optimal)."""
        if context.chunk_flops is not None:
            return context.chunk_flops
        return context.chunk_steps * context.step_samples * train_flops_per_sample(model)
