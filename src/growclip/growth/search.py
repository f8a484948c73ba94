"""Successive halving over growth candidates: every contender trains on the same batches for a
short proxy budget, the better half (by score) goes on with twice the budget, until one is left.

The search only orders and prunes; training and scoring a contender are the caller's (see
`train.growing`), so the same machinery serves every policy and its state is plain JSON that a
checkpoint can carry between rounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from growclip.growth.space import Candidate


@dataclass
class Contender:
    candidate: Candidate
    rounds: list[dict[str, float]] = field(default_factory=list)  # per round: steps, losses, cost, score
    alive: bool = True

    @property
    def score(self) -> float:
        return self.rounds[-1]["score"] if self.rounds else math.inf


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

    def rounds_left(self) -> int:
        return math.ceil(math.log(len(self.alive), self.eta)) if len(self.alive) > 1 else 0

    def run_round(self, train_and_score: Callable[[int, Contender, int], dict[str, float]]) -> None:
        """`train_and_score(index, contender, steps)` trains contender `index` `steps` more steps and
        returns its round record (with a "score", lower is better); the best 1/eta go on (ties: the
        earlier candidate, so "keep" wins a tie)."""
        steps = self.first_steps * self.eta**self.round
        alive = [(i, c) for i, c in enumerate(self.contenders) if c.alive]
        for index, contender in alive:
            contender.rounds.append({"round": self.round, "steps": steps, **train_and_score(index, contender, steps)})
        ranked = sorted(alive, key=lambda item: (item[1].score, item[0]))
        for _, contender in ranked[math.ceil(len(alive) / self.eta) :]:
            contender.alive = False
        self.round += 1

    def state_dict(self) -> dict[str, Any]:
        return {"first_steps": self.first_steps, "eta": self.eta, "round": self.round,
                "contenders": [{"candidate": asdict(c.candidate), "rounds": c.rounds, "alive": c.alive}
                               for c in self.contenders]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SuccessiveHalving:
        search = cls([Candidate(tuple(c["candidate"]["ops"]), c["candidate"]["momentum"])
                      for c in state["contenders"]], state["first_steps"], state["eta"])
        search.round = state["round"]
        for contender, saved in zip(search.contenders, state["contenders"]):
            contender.rounds, contender.alive = saved["rounds"], saved["alive"]
        return search
