"""What a growth policy decided before a chunk, and why: the record a run checkpoints and reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from growclip.growth.space import growth_label


@dataclass
class Decision:
    """`proxy_steps`: the winner's proxy training, which counts as the chunk's own training (so the
    chunk trains that much less); `retrain`: the chosen architecture starts afresh (scratch)."""

    chunk: int
    ops: tuple[str, ...] = ()
    momentum: float = 1.0
    why: str = ""
    proxy_steps: int = 0
    search_flops: float = 0.0  # the search's overhead: every proxy step but the winner's, and scoring
    search_fraction: float = 0.0  # overhead / (overhead + the chunk's training)
    candidates: list[dict[str, Any]] = field(default_factory=list)  # label, rounds, alive
    left_out: list[str] = field(default_factory=list)  # candidates the search could not afford
    retrain: bool = False
    seed: int = 0  # of the fresh initialisations the growth drew (new units, what PIM mixes in)

    @property
    def grew(self) -> bool:
        return bool(self.ops)

    @property
    def label(self) -> str:
        return growth_label(self.ops, self.momentum)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Decision:
        return cls(**{**state, "ops": tuple(state["ops"])})
