"""How a model came to its architecture: every growth step since it was built or imported, kept in
each checkpoint (the part `LINEAGE`). `growclip merge` replays the steps a run took after its
starting model's own, to map that model exactly into the architecture the run grew it to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from growclip.growth.decision import Decision
from growclip.growth.grow import grown_config, is_exact
from growclip.model.config import ModelConfig

LINEAGE = "growth"  # the checkpoint part


class LineageError(ValueError):
    pass


@dataclass(frozen=True)
class GrowthStep:
    ops: tuple[str, ...]
    momentum: float  # PIM m
    seed: int  # of the fresh initialisations the step drew
    source: ModelConfig  # the architecture it grew from
    retrain: bool = False  # the grown architecture then started afresh (`--growth scratch`): nothing maps

    @property
    def target(self) -> ModelConfig:
        return grown_config(self.source, self.ops)

    @property
    def exact(self) -> bool:
        """The operators preserve the function (whatever PIM then did)."""
        return not self.retrain and is_exact(self.source, self.ops)

    def to_dict(self) -> dict[str, Any]:
        return {"ops": list(self.ops), "momentum": self.momentum, "seed": self.seed, "from": self.source.to_dict(),
                "function_preserving": self.exact and self.momentum == 1, "retrain": self.retrain}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> GrowthStep:
        return cls(tuple(record["ops"]), record["momentum"], record["seed"], ModelConfig.from_dict(record["from"]),
                   record.get("retrain", False))


@dataclass
class GrowthLineage:
    steps: list[GrowthStep] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": [step.to_dict() for step in self.steps]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = [GrowthStep.from_dict(record) for record in state["steps"]]

    def add(self, decision: Decision, source: ModelConfig) -> None:
        """A run's growth decision, taken on a model of architecture `source` (nothing if it kept it)."""
        if decision.grew or decision.retrain:
            self.steps.append(GrowthStep(decision.ops, decision.momentum, decision.seed, source, decision.retrain))

    @classmethod
    def from_part(cls, part: dict[str, Any] | list[dict[str, Any]] | None) -> GrowthLineage:
        """A checkpoint's part; `growclip grow` wrote a bare list of steps before lineages were kept."""
        if part is None:
            return cls()
        return cls([GrowthStep.from_dict(record) for record in (part if isinstance(part, list) else part["steps"])])

    def since(self, start: GrowthLineage, start_config: ModelConfig, end_config: ModelConfig) -> list[GrowthStep]:
        """The steps that took a model from `start` (its lineage and architecture) to `end_config`;
        a LineageError where the lineage does not lead from one to the other."""
        if self.steps[: len(start.steps)] != start.steps:
            raise LineageError("the trained model did not grow from this start: their growth records differ")
        steps, config = self.steps[len(start.steps):], start_config
        for step in steps:
            if step.source != config:
                raise LineageError(f"growth record {' '.join(step.ops)} starts from {step.source.describe()}, "
                                   f"not from {config.describe()}")
            config = step.target
        if config != end_config:
            raise LineageError(f"the start's architecture ({start_config.describe()}), grown as recorded, is "
                               f"{config.describe()}, not the trained model's {end_config.describe()}")
        return steps
