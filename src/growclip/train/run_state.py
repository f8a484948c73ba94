"""The resumable progress of a growing run, typed: where it is in the stream, what was decided, and
a search interrupted between rounds. Checkpoints carry `StreamProgress.state_dict()` as JSON and
its contenders as safetensors beside the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from growclip.data.tokenizer import Tokenizer
from growclip.growth.decision import Decision
from growclip.growth.policy import Contenders
from growclip.growth.search import SuccessiveHalving
from growclip.growth.state import GrowthState
from growclip.model.config import ModelConfig
from growclip.model.factory import create_model
from growclip.train.checkpoint import checkpoint_path, load_extra_tensors, prune_checkpoints, save_checkpoint
from growclip.train.config import TrainConfig
from growclip.train.records import ChunkCompute, ChunkRecord
from growclip.train.state import rng_state


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

    def state_dict(self) -> dict[str, Any]:
        return {"chunk": self.chunk, "phase": self.phase.value, "global_step": self.global_step,
                "history": [record.to_dict() for record in self.history],
                "decision": self.decision.state_dict() if self.decision else None,
                "search": self.search.state_dict() if self.search else None,
                "contenders": {str(i): asdict(c) for i, c in self.contenders.items()}, "watched": self.watched}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> StreamProgress:
        return cls(state["chunk"], Phase(state["phase"]), state["global_step"],
                   [ChunkRecord.from_dict(record) for record in state["history"]],
                   Decision.from_state_dict(state["decision"]) if state["decision"] else None,
                   SuccessiveHalving.from_state(state["search"]) if state["search"] else None,
                   {int(i): ModelConfig(**c) for i, c in state["contenders"].items()}, state.get("watched", []))


def contender_file(index: int) -> str:
    return f"contender_{index}.safetensors"


def contender_tensors(state: GrowthState) -> dict[str, torch.Tensor]:
    """A contender's weights ("model.<name>") and moments, for a safetensors file in a checkpoint."""
    return {**{f"model.{k}": v for k, v in state.weights.items()}, **state.join_moments()}


def load_contenders(checkpoint: Path, progress: StreamProgress) -> Contenders:
    """The live contenders of the search in `progress`, as saved in `checkpoint`."""
    contenders = {}
    for index, config in progress.contenders.items():
        tensors = load_extra_tensors(checkpoint, contender_file(index))
        model = create_model(config)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        contenders[index] = GrowthState.from_tensors(model, tensors)
    return contenders


def save_progress(config: TrainConfig, progress: StreamProgress, state: GrowthState, tokenizer: Tokenizer,
                  step_samples: int, contenders: Contenders | None = None) -> Path:
    """A checkpoint between chunks or search rounds: the current model with its moments, the RNGs,
    the progress, and the live contenders of an unfinished search."""
    rng_json, rng_tensors = rng_state()
    step = progress.global_step
    info = {"step": 0, "global_step": step, "samples": step * step_samples, "rng": rng_json,
            "processes": step_samples // config.process_batch,
            "stream": progress.state_dict(), "train_config": config.to_dict()}
    extra = {contender_file(i): contender_tensors(contenders[i]) for i in progress.contenders} if contenders else None
    path = save_checkpoint(checkpoint_path(config.output, step), state.build_model(), tokenizer, info,
                           state.join_moments() | rng_tensors, extra)
    prune_checkpoints(config.output, config.keep_checkpoints)
    return path


def chunk_compute(progress: StreamProgress, train_steps: int, step_samples: int, flops_per_sample: float
                  ) -> ChunkCompute:
    """The decided chunk's compute: its training (the winner's proxy steps included), its search's
    overhead, and the run's total so far."""
    decision = progress.decision
    train = (train_steps + decision.proxy_steps) * step_samples * flops_per_sample
    before = progress.history[-1].total_tflop if progress.history else 0.0
    return ChunkCompute(train / 1e12, decision.search_flops / 1e12, before + (train + decision.search_flops) / 1e12)
