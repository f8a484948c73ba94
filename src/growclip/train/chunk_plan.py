"""How long a growing run trains on each chunk, and how the policy `--growth` names is made."""

from __future__ import annotations

from dataclasses import dataclass

from growclip.data.chunks import ArrivedChunks
from growclip.growth.decision import Decision
from growclip.growth.frontier import ComputeFrontier, TrackFrontier, ops_toward
from growclip.growth.policy import Fixed, GrowthPolicy, Schedule, Search, check_schedule, parse_schedule
from growclip.model.config import ModelConfig
from growclip.train.sections import StreamConfig


@dataclass(frozen=True)
class ChunkPlan:
    """Each chunk trains `epochs` passes over its pairs, or `chunk_samples` pairs when given."""

    chunks: ArrivedChunks
    epochs: float
    chunk_samples: int | None
    step_samples: int

    def passes(self, chunk: int) -> float:
        """How many times the chunk's training reads the new chunk's pairs (what decides the default crop)."""
        return self.chunk_samples / self.chunks.records(chunk) if self.chunk_samples else self.epochs

    def steps(self, chunk: int) -> int:
        samples = self.chunk_samples or int(self.epochs * self.chunks.records(chunk))
        return max(1, samples // self.step_samples)

    def train_steps(self, decision: Decision) -> int:
        """The chunk's steps less the winner's proxy steps (already trained); a retrained architecture
        trains from zero for as long as every chunk so far."""
        if decision.retrain:
            return sum(self.steps(i) for i in range(decision.chunk + 1))
        return max(1, self.steps(decision.chunk) - decision.proxy_steps)


def growth_policy(stream: StreamConfig, model: ModelConfig, seed: int, next_chunk: int = 0) -> GrowthPolicy:
    """The policy `--growth` names (auto when unset), its schedule checked against `model`, the
    architecture the chunk `next_chunk` will be decided on (a resumed or imported model's own)."""
    if stream.growth == "fixed":
        return Fixed()
    if stream.growth == "frontier":
        frontier = ComputeFrontier.load(stream.frontier)
        for rung in frontier.rungs:  # an unreachable rung fails now, not chunks into the run
            ops_toward(model, rung.model)
        return TrackFrontier(frontier, stream.momentum, seed)
    if stream.growth == "schedule":
        schedule = parse_schedule(stream.grow_schedule)
        check_schedule(schedule, model, next_chunk)
        return Schedule(schedule, stream.momentum, seed)
    return Search(stream.params_per_pair, stream.search_momenta, stream.search_fraction, stream.cost_weight, seed,
                  stream.min_head_dim, retrain=stream.growth == "scratch")
