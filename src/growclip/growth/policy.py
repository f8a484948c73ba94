"""Growth policies: before each chunk of a stream, given the model so far, decide how it grows.

Every policy answers the same question through `decide(state, context)`, so a growing run has
one loop and comparisons between policies differ only in the decision:
  - fixed: never grows;
  - schedule: grows by given operators before given chunks (`--grow-schedule 1:width=256`);
  - auto: a successive-halving search over the growth space (operators x PIM momenta), each
    contender trained briefly on the new data and scored on held-out new and old pairs with a
    cost penalty; the winner goes on from its proxy training;
  - scratch: searches like auto, then retrains the chosen architecture from zero;
  - frontier: grows toward the compute-optimal size a measured frontier gives (`growth.frontier`).
Training a contender is the caller's (`ChunkContext.run_proxy`), so nothing here trains.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from growclip.growth.base import GrowthError
from growclip.growth.decision import Decision
from growclip.growth.grow import grow_state, grown_config
from growclip.growth.parse import parse_op
from growclip.growth.search import ProxyScore, SuccessiveHalving, plan_search, proxy_score, search_decision
from growclip.growth.space import MIN_HEAD_DIM, growth_space, params_budget
from growclip.growth.state import GrowthState
from growclip.model.config import ModelConfig
from growclip.model.cost import model_cost, train_flops_per_sample
from growclip.model.factory import create_model
from growclip.runtime import derive_seed

Contenders = dict[int, GrowthState]  # index in the search -> the contender's state


@dataclass
class ChunkContext:
    """What a policy may know about the stream and ask of training before chunk `chunk`.

    `run_proxy(state, steps, round)` trains a contender `steps` more steps (the same batches for
    every contender of a round) and returns it with its held-out loss on the new chunk and on the
    old ones (None before there are old ones); `after_round` checkpoints a search between rounds;
    `resumed` is a search interrupted mid-way, with its contenders; `flops_before` the run's compute
    (training and search) over every chunk before this one; `chunk_flops` the chunk's training compute
    where the stream fixes it (`--chunk-tflop`; then `chunk_steps` are the current model's)."""

    chunk: int
    pairs_seen: int  # training pairs of every chunk so far, this one included
    chunk_steps: int  # the chunk's training steps
    step_samples: int  # pairs per optimizer step
    scored_pairs: int  # held-out pairs a contender is scored on
    run_proxy: Callable[[GrowthState, int, int], tuple[GrowthState, float, float | None]] | None = None
    after_round: Callable[[SuccessiveHalving, Contenders], None] | None = None
    resumed: tuple[SuccessiveHalving, Contenders] | None = None
    flops_before: float = 0.0
    chunk_flops: float | None = None


class GrowthPolicy(ABC):
    """Chunk 0 is trained as it comes: a decision needs a model trained on something."""

    def decide(self, state: GrowthState, context: ChunkContext) -> tuple[GrowthState, Decision]:
        if context.chunk == 0:
            return state, Decision(0, why="first chunk")
        return self.decide_growth(state, context)

    @abstractmethod
    def decide_growth(self, state: GrowthState, context: ChunkContext) -> tuple[GrowthState, Decision]: ...


class Fixed(GrowthPolicy):
    def decide_growth(self, state: GrowthState, context: ChunkContext) -> tuple[GrowthState, Decision]:
        return state, Decision(context.chunk, why="fixed policy")


@dataclass
class Schedule(GrowthPolicy):
    schedule: dict[int, list[str]]  # chunk -> operators applied before it
    momentum: float
    seed: int

    def decide_growth(self, state: GrowthState, context: ChunkContext) -> tuple[GrowthState, Decision]:
        ops = self.schedule.get(context.chunk, [])
        seed = derive_seed(self.seed, context.chunk)
        grown = grow_state(state, ops, self.momentum, seed)
        return grown, Decision(context.chunk, tuple(ops), self.momentum if ops else 1.0, why="schedule", seed=seed)


@dataclass
class Search(GrowthPolicy):
    params_per_pair: float
    momenta: tuple[float, ...]
    search_fraction: float
    cost_weight: float
    seed: int
    min_head_dim: int = MIN_HEAD_DIM
    retrain: bool = False  # scratch: the chosen architecture starts afresh

    def decide_growth(self, state: GrowthState, context: ChunkContext) -> tuple[GrowthState, Decision]:
        chosen, decision = self._search(state, context)
        if self.retrain:
            chosen = GrowthState.capture(create_model(chosen.config, seed=derive_seed(self.seed, context.chunk, 1)))
            decision.retrain = True
        return chosen, decision

    def _search(self, state: GrowthState, context: ChunkContext) -> tuple[GrowthState, Decision]:
        space = growth_space(state.config, params_budget(context.pairs_seen, self.params_per_pair), self.momenta,
                             self.min_head_dim)
        if len(space) == 1:
            return state, Decision(context.chunk, why=f"nothing else fits {self.params_per_pair:g} params/pair")
        search, contenders = context.resumed or self._start(state, space, context)
        if search.round == 0 and search.done:  # not a finished search resumed: no child was affordable
            return state, Decision(context.chunk, why=f"no child's proxy fits {self.search_fraction:.0%} of the chunk",
                                   left_out=[c.label for c in space[1:]])
        while not search.done:
            search.run_round(lambda i, _, steps: self._train_and_score(i, contenders, steps, search.round,
                                                                       state.config, context))
            if context.after_round is not None:
                context.after_round(search, contenders)
        chosen = contenders[search.contenders.index(search.winner)]
        chunk_flops = context.chunk_steps * context.step_samples * train_flops_per_sample(chosen.config)
        decision = search_decision(context.chunk, search, context.step_samples, chunk_flops, self.retrain)
        decision.seed = derive_seed(self.seed, context.chunk)  # the contenders' (`_start`)
        searched = {c.candidate for c in search.contenders}
        decision.left_out = [c.label for c in space if c not in searched]
        return chosen, decision

    def _start(self, state: GrowthState, space: list, context: ChunkContext) -> tuple[SuccessiveHalving, Contenders]:
        """The search's contenders, as many as an overhead of `search_fraction` of the chunk's
        training affords (the overhead is reported against the overhead plus the chunk's training)."""
        flops = train_flops_per_sample(state.config)
        score_steps = context.scored_pairs * model_cost(state.config).forward_flops / (context.step_samples * flops)
        cap = self.search_fraction / (1 - self.search_fraction) * context.chunk_steps
        candidates, first_steps = plan_search(state.config, space, cap, score_steps)
        search = SuccessiveHalving(candidates, first_steps)
        if search.done:  # only "keep" is affordable: nothing to grow
            return search, {}
        seed = derive_seed(self.seed, context.chunk)
        return search, {i: grow_state(state, c.candidate.ops, c.candidate.momentum, seed)
                        for i, c in enumerate(search.contenders)}

    def _train_and_score(self, index: int, contenders: Contenders, steps: int, round_: int, current: ModelConfig,
                         context: ChunkContext) -> ProxyScore:
        contenders[index], new, old = context.run_proxy(contenders[index], steps, round_)
        config = contenders[index].config
        flops = train_flops_per_sample(config)
        cost = flops / train_flops_per_sample(current)
        return ProxyScore(proxy_score(new, old, cost, self.cost_weight), new, old, cost, flops,
                          context.scored_pairs * model_cost(config).forward_flops)


def parse_schedule(items: Sequence[str]) -> dict[int, list[str]]:
    """`("1:width=256", "2:text_layers+1")` -> {1: ["width=256"], 2: ["text_layers+1"]}, every
    operator parsed, so that a typo fails before any training."""
    schedule: dict[int, list[str]] = {}
    for item in items:
        chunk, sep, op = item.partition(":")
        if not sep or not chunk.strip().isdigit() or int(chunk) < 1:
            raise GrowthError(f"grow schedule item {item!r}: write K:OP with K a chunk number from 1, "
                              f"e.g. 1:width=256")
        parse_op(op)
        schedule.setdefault(int(chunk), []).append(op)
    return schedule


def check_schedule(schedule: dict[int, list[str]], config: ModelConfig, first_chunk: int = 0) -> None:
    """Every operator scheduled from `first_chunk` on (where `config` is the model) applies, in order,
    to the architecture it will meet."""
    for chunk in sorted(c for c in schedule if c >= first_chunk):
        try:
            config = grown_config(config, schedule[chunk])
        except GrowthError as err:
            raise GrowthError(f"grow schedule, chunk {chunk}: {err}") from None
