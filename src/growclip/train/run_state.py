"""The resumable progress of a growing run, typed: where it is in the stream, what was decided, and
a search interrupted between rounds. Checkpoints carry `StreamProgress.state_dict()` as JSON and
its contenders as safetensors beside the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import torch

from growclip.checkpoint import Checkpointer, Progress, SavedRun, Snapshot, StateDict, Stateful
from growclip.data.tokenizer import Tokenizer
from growclip.growth.decision import Decision
from growclip.growth.policy import Contenders
from growclip.growth.search import SuccessiveHalving
from growclip.growth.state import GrowthState
from growclip.model.config import ModelConfig
from growclip.model.factory import create_model
from growclip.model.moments import flat_moments, nested_moments
from growclip.train.config import TrainConfig
from growclip.train.owners import GlobalRNG
from growclip.train.records import ChunkCompute, ChunkRecord


class Phase(StrEnum):
    DECIDE = "decide"  # before the chunk's growth decision (or in the middle of its search)
    TRAIN = "train"  # decided; training on the chunk


@dataclass
class StreamProgress:
    chunk: int = 0  # the chunk being decided or trained
    phase: Phase = Phase.DECIDE
    global_step: int = 0  # optimizer steps of the whole run, proxies of winners included
    history: list[ChunkRecord] = field(default_factory=list)  # one record per finished chunk
    decision: Decision | None = None  # the chunk's, once decided
    search: SuccessiveHalving | None = None  # an unfinished search (phase DECIDE)
    contenders: dict[int, ModelConfig] = field(default_factory=dict)  # its live contenders' architectures
    watched: list[str] = field(default_factory=list)  # a watched folder's chunks as taken, in order

    @property
    def total_tflop(self) -> float:
        """Training and search compute of every finished chunk."""
        return self.history[-1].total_tflop if self.history else 0.0

    @property
    def undecided(self) -> int:
        """The first chunk whose growth is not decided yet."""
        return self.chunk + (self.phase is Phase.TRAIN)

    def state_dict(self) -> StateDict:
        return {"chunk": self.chunk, "phase": self.phase.value, "global_step": self.global_step,
                "history": [record.to_dict() for record in self.history],
                "decision": self.decision.state_dict() if self.decision else None,
                "search": self.search.state_dict() if self.search else None,
                "contenders": {str(i): asdict(c) for i, c in self.contenders.items()}, "watched": self.watched}

    def load_state_dict(self, state: StateDict) -> None:
        self.chunk, self.phase, self.global_step = state["chunk"], Phase(state["phase"]), state["global_step"]
        self.history = [ChunkRecord.from_dict(record) for record in state["history"]]
        self.decision = Decision.from_state_dict(state["decision"]) if state["decision"] else None
        self.search = SuccessiveHalving.from_state(state["search"]) if state["search"] else None
        self.contenders = {int(i): ModelConfig(**c) for i, c in state["contenders"].items()}
        self.watched = state.get("watched", [])


def contender_file(index: int) -> str:
    return f"contender_{index}.safetensors"


def contender_tensors(state: GrowthState) -> dict[str, torch.Tensor]:
    """A contender's weights ("model.<name>") and moments ("optimizer.exp_avg.<name>"), for a
    safetensors file in a checkpoint."""
    moments = {f"optimizer.{key}": t for key, t in flat_moments(state.moments).items()}
    return {**{f"model.{k}": v for k, v in state.weights.items()}, **moments}


def load_contenders(saved: SavedRun, progress: StreamProgress) -> Contenders:
    """The live contenders of the search in `progress`, as saved in `saved`."""
    contenders = {}
    for index, config in progress.contenders.items():
        tensors = saved.extra(contender_file(index))
        model = create_model(config)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        contenders[index] = GrowthState.of(model, nested_moments(
            {k[len("optimizer."):]: v for k, v in tensors.items() if k.startswith("optimizer.")}))
    return contenders


def save_progress(config: TrainConfig, progress: StreamProgress, state: GrowthState, tokenizer: Tokenizer,
                  step_samples: int, run_owners: Mapping[str, Stateful], contenders: Contenders | None = None) -> Path:
    """A checkpoint between chunks or search rounds: the current model with its moments, the RNGs,
    the run's own state (`run_owners`: its progress, ...), and the live contenders of an unfinished search."""
    step = progress.global_step
    owners = {"optimizer": Snapshot(flat_moments(state.moments)), "rng": GlobalRNG(), **run_owners}
    extra = {contender_file(i): contender_tensors(contenders[i]) for i in progress.contenders} if contenders else None
    checkpoints = Checkpointer(config.run.output, config.run.keep_checkpoints)
    return checkpoints.save(state.build_model(), tokenizer, Progress(0, step, step * step_samples,
                            step_samples // config.optim.process_batch), owners, config.to_dict(), extra)


def chunk_compute(progress: StreamProgress, train_steps: int, step_samples: int, flops_per_sample: float
                  ) -> ChunkCompute:
    """The decided chunk's compute: its training (the winner's proxy steps included), its search's
    overhead, and the run's total so far."""
    decision = progress.decision
    train = (train_steps + decision.proxy_steps) * step_samples * flops_per_sample
    return ChunkCompute(train / 1e12, decision.search_flops / 1e12,
                        progress.total_tflop + (train + decision.search_flops) / 1e12)
