"""How long a growing run trains on each chunk, and how the policy `--growth` names is made."""

from __future__ import annotations

from dataclasses import dataclass

from growclip.data.chunks import ArrivedChunks
from growclip.growth.decision import Decision
from growclip.growth.frontier import ComputeFrontier, TrackFrontier, ops_toward
from growclip.growth.policy import Fixed, GrowthPolicy, Schedule, Search, check_schedule, parse_schedule
from growclip.model.config import ModelConfig
from growclip.model.cost import train_flops_per_sample
from growclip.train.records import ChunkCompute
from growclip.train.run_state import StreamProgress, chunk_compute
from growclip.train.sections import StreamConfig


@dataclass(frozen=True)
class ChunkPlan:
    """Each chunk trains `epochs` passes over its pairs, or the stream's `chunk_samples` pairs, or as
    many pairs as its `chunk_tflop` of training compute affords the model it trains (the last budget
    repeats)."""

    chunks: ArrivedChunks
    epochs: float
    stream: StreamConfig  # its chunk_samples or chunk_tflop
    step_samples: int

    def flops(self, chunk: int) -> float | None:
        """The chunk's training compute when the stream fixes it, else None (it follows from the size)."""
        budgets = self.stream.chunk_tflop
        return budgets[min(chunk, len(budgets) - 1)] * 1e12 if budgets else None

    def passes(self, chunk: int, model: ModelConfig) -> float:
        """How many times the chunk's training reads the new chunk's pairs (what decides the default crop)."""
        return self.steps(chunk, model) * self.step_samples / self.chunks.records(chunk)

    def steps(self, chunk: int, model: ModelConfig) -> int:
        flops = self.flops(chunk)
        if flops is not None:
            samples = int(flops / train_flops_per_sample(model))
        else:
            samples = self.stream.chunk_samples or int(self.epochs * self.chunks.records(chunk))
        return max(1, samples // self.step_samples)

    def train_steps(self, decision: Decision, model: ModelConfig) -> int:
        """The chunk's steps of `model` less the winner's proxy steps (already trained); a retrained
        architecture trains from zero for as long as every chunk so far."""
        if decision.retrain:
            return sum(self.steps(i, model) for i in range(decision.chunk + 1))
        return max(1, self.steps(decision.chunk, model) - decision.proxy_steps)

    def compute(self, progress: StreamProgress, model: ModelConfig) -> ChunkCompute:
        """The decided chunk's compute, trained on `model`, and the run's so far."""
        steps = self.train_steps(progress.decision, model)
        return chunk_compute(progress, steps, self.step_samples, train_flops_per_sample(model))


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
