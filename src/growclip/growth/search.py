"""Successive halving over growth candidates: every contender trains on the same batches for a
short proxy budget, the better half (by score) goes on with twice the budget, until one is left.

`SuccessiveHalving` only orders and prunes; training a contender is the caller's (see
`growth.policy`), and its state is plain JSON that a checkpoint can carry between rounds. The
planning (what the search can afford), the score and the decision record are public functions
here so that each can be tested and read on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from statistics import mean
from typing import Any

from growclip.growth.decision import Decision
from growclip.growth.grow import grown_config
from growclip.growth.space import Candidate
from growclip.model.config import ModelConfig
from growclip.model.cost import train_flops_per_sample

MIN_PROXY_STEPS = 8  # shorter proxies rank contenders by noise


@dataclass(frozen=True)
class ProxyScore:
    """What a contender's proxy training measured: lower `score` is better (see `proxy_score`)."""

    score: float
    new_loss: float = math.nan  # held-out loss on the new chunk
    old_loss: float | None = None  # on the earlier chunks (None before there are any)
    cost: float = 1.0  # training FLOPs per pair over the current model's
    train_flops: float = 0.0  # training FLOPs per pair
    score_flops: float = 0.0  # FLOPs of scoring it on the held-out pairs


@dataclass(frozen=True)
class SearchRound:
    round: int
    steps: int  # proxy steps trained in this round
    proxy: ProxyScore

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON, as checkpoints and decision records hold it."""
        return {"round": self.round, "steps": self.steps, **asdict(self.proxy)}

    @classmethod
    def from_dict(cls, flat: dict[str, Any]) -> SearchRound:
        """Also a round saved when a missing old loss was written as NaN."""
        proxy = {f.name: flat[f.name] for f in fields(ProxyScore) if f.name in flat}
        if proxy.get("old_loss") is not None and math.isnan(proxy["old_loss"]):
            proxy["old_loss"] = None
        return cls(flat["round"], flat["steps"], ProxyScore(**proxy))


@dataclass
class Contender:
    candidate: Candidate
    rounds: list[SearchRound] = field(default_factory=list)
    alive: bool = True

    @property
    def score(self) -> float:
        return self.rounds[-1].proxy.score if self.rounds else math.inf

    def record(self) -> dict[str, Any]:
        """The contender in a decision record: its label, rounds and whether it won."""
        return {"label": self.candidate.label, "rounds": [r.to_dict() for r in self.rounds], "alive": self.alive}


class SuccessiveHalving:
    def __init__(self, candidates: list[Candidate], first_steps: int, eta: int = 2) -> None:
        if not candidates:
            raise ValueError("the growth space is empty")
        self.contenders = [Contender(candidate) for candidate in candidates]
        self.first_steps, self.eta, self.round = first_steps, eta, 0

    @property
    def alive(self) -> list[Contender]:
        return [c for c in self.contenders if c.alive]

    @property
    def done(self) -> bool:
        return len(self.alive) == 1

    @property
    def winner(self) -> Contender:
        if not self.done:
            raise RuntimeError("the search has not finished")
        return self.alive[0]

    def run_round(self, train_and_score: Callable[[int, Contender, int], ProxyScore]) -> None:
        """`train_and_score(index, contender, steps)` trains contender `index` `steps` more steps and
        returns what it measured; the best 1/eta go on (ties: the earlier candidate, so "keep" wins a tie)."""
        steps = self.first_steps * self.eta**self.round
        alive = [(i, c) for i, c in enumerate(self.contenders) if c.alive]
        for index, contender in alive:
            contender.rounds.append(SearchRound(self.round, steps, train_and_score(index, contender, steps)))
        ranked = sorted(alive, key=lambda item: (item[1].score, item[0]))
        for _, contender in ranked[math.ceil(len(alive) / self.eta) :]:
            contender.alive = False
        self.round += 1

    def state_dict(self) -> dict[str, Any]:
        return {"first_steps": self.first_steps, "eta": self.eta, "round": self.round,
                "contenders": [{"candidate": asdict(c.candidate), "rounds": [r.to_dict() for r in c.rounds],
                                "alive": c.alive} for c in self.contenders]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SuccessiveHalving:
        search = cls([Candidate(tuple(c["candidate"]["ops"]), c["candidate"]["momentum"])
                      for c in state["contenders"]], state["first_steps"], state["eta"])
        search.round = state["round"]
        for contender, saved in zip(search.contenders, state["contenders"]):
            contender.rounds = [SearchRound.from_dict(r) for r in saved["rounds"]]
            contender.alive = saved["alive"]
        return search


def plan_search(config: ModelConfig, candidates: list[Candidate], overhead_steps: float, score_steps: float
                ) -> tuple[list[Candidate], int]:
    """The candidates a search can afford and the proxy steps of its first round.

    `overhead_steps` caps the search's overhead, in training steps of the current model (`config`):
    the winner's proxy steps count as the chunk's training, so the cap pays for every other
    contender's steps (priced as the average child, since "keep" is the cheapest and wins often) and
    for scoring every contender in every round (`score_steps` each). When that cannot give every
    candidate MIN_PROXY_STEPS the dearest candidates go (the space lists them last); when it cannot
    even give one child, only "keep" is left and nothing is searched."""
    base = train_flops_per_sample(config)
    ratios = [train_flops_per_sample(grown_config(config, c.ops)) / base for c in candidates]
    while len(candidates) > 1:
        alive = [math.ceil(len(candidates) / 2**r) for r in range(math.ceil(math.log2(len(candidates))))]
        losers = sum((n - 1) * 2**r for r, n in enumerate(alive)) * mean(ratios[1 : len(candidates)])
        scoring = score_steps * sum(alive) * mean(ratios[: len(candidates)])
        steps = int((overhead_steps - scoring) / losers)
        if steps >= MIN_PROXY_STEPS:
            return candidates, steps
        candidates = candidates[:-1]
    return candidates, 0


def proxy_score(new_loss: float, old_loss: float | None, cost: float, cost_weight: float) -> float:
    """Lower is better: held-out loss on the new chunk (averaged with the old chunks', which measures
    forgetting), plus `cost_weight` per doubling of training FLOPs per pair over the current model."""
    loss = new_loss if old_loss is None else (new_loss + old_loss) / 2
    return loss + cost_weight * math.log2(cost)


def explain(search: SuccessiveHalving) -> str:
    """One line: the winner's score, the rounds, and the runner-up of the last round."""
    last = max(c.rounds[-1].round for c in search.contenders)
    finalists = sorted((c for c in search.contenders if c.rounds[-1].round == last), key=lambda c: c.score)
    runner = f", ahead of {finalists[1].candidate.label} ({finalists[1].score:.3f})" if len(finalists) > 1 else ""
    return f"best score {finalists[0].score:.3f} after {search.round} rounds{runner}"


def search_decision(chunk: int, search: SuccessiveHalving, step_samples: int, chunk_train_flops: float,
                    retrain: bool) -> Decision:
    """The finished search as a decision. Its overhead is every proxy step but the winner's (which
    count as the chunk's training, unless the winner is retrained from zero) plus the scoring;
    `chunk_train_flops` is the chunk's training compute on the chosen architecture."""
    winner = search.winner
    proxy_steps = 0 if retrain else sum(r.steps for r in winner.rounds)
    spent = sum(r.steps * step_samples * r.proxy.train_flops + r.proxy.score_flops
                for c in search.contenders for r in c.rounds)
    overhead = spent - proxy_steps * step_samples * winner.rounds[-1].proxy.train_flops
    return Decision(chunk, winner.candidate.ops, winner.candidate.momentum, explain(search), proxy_steps,
                    overhead, overhead / (overhead + chunk_train_flops), [c.record() for c in search.contenders],
                    retrain=retrain)
