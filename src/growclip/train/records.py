"""What a growing run records for each finished chunk, typed. The same record is printed by the
command line, written to the metrics log and `stream.json`, kept in every checkpoint's stream
progress and read by the report and the benchmarks; its JSON form (`to_dict`) is flat, as it has
been since the first growing run, so older checkpoints and committed results read back unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from growclip.eval.suite import MEAN_TOP1, RECALL, SUMMARY_METRICS
from growclip.model.config import ModelConfig

LOGGED_LATER = {"pairs", "samples_per_s", "tflops_per_s"}  # fields an older record may lack (read as None)


@dataclass(frozen=True)
class ChunkCompute:
    """TFLOP of a chunk's training (the winner's proxy steps included), of its search's overhead, and
    of the whole run up to the chunk's end."""

    train_tflop: float
    search_tflop: float
    total_tflop: float


@dataclass(frozen=True)
class ChunkRecord:
    step: int  # optimizer steps of the run at the chunk's end
    samples: int
    chunk: int
    name: str  # the chunk's spec or file
    pairs: int | None  # the chunk's training pairs (None: not counted, as remote shards)
    architecture: ModelConfig  # after the decision
    decision: str  # "keep", or the operators and the PIM momentum
    grew: bool
    params: int
    gflops_per_pair: float  # forward
    search_fraction: float  # the search's overhead / (overhead + the chunk's training)
    heldout_new_loss: float  # on the new chunk's held-out pairs
    heldout_old_loss: float | None  # on the earlier chunks' (None for the first chunk)
    compute: ChunkCompute
    samples_per_s: float | None  # median over the chunk's logging windows, all processes
    tflops_per_s: float | None
    summary: dict[str, float]  # the evaluation's summary: `eval.suite.SUMMARY_METRICS` it has
    zeroshot_top1: dict[str, float]  # per task
    candidates: tuple[dict[str, Any], ...] = ()  # the search's contenders and rounds, once it is done

    @property
    def mean_top1(self) -> float | None:
        return self.summary.get(MEAN_TOP1)

    @property
    def recall(self) -> tuple[float, float] | None:
        """R@1 image->text and text->image, where the run has a retrieval set."""
        return (self.summary[RECALL[0]], self.summary[RECALL[1]]) if RECALL[0] in self.summary else None

    @property
    def total_tflop(self) -> float:
        return self.compute.total_tflop

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form: the summary's metrics and the compute beside the other fields."""
        flat = {f.name: getattr(self, f.name) for f in fields(self)}
        flat["architecture"] = self.architecture.to_dict()
        summary, compute, zeroshot = flat.pop("summary"), asdict(flat.pop("compute")), flat.pop("zeroshot_top1")
        candidates = list(flat.pop("candidates"))
        return {**flat, **compute, **summary, "zeroshot_top1": zeroshot,
                **({"candidates": candidates} if candidates else {})}

    @classmethod
    def from_dict(cls, flat: dict[str, Any]) -> ChunkRecord:
        """Also a record logged before the compute or the speed was counted (TFLOP read as NaN, speed
        as None); a record missing anything else is refused (KeyError), not read half empty."""
        names = {f.name for f in fields(cls)} - {"architecture", "compute", "summary", "zeroshot_top1", "candidates"}
        given = {name: flat[name] if name not in LOGGED_LATER else flat.get(name) for name in names}
        return cls(**given, architecture=ModelConfig.from_dict(flat["architecture"]),
                   zeroshot_top1=flat.get("zeroshot_top1", {}),
                   compute=ChunkCompute(**{f.name: flat.get(f.name, math.nan) for f in fields(ChunkCompute)}),
                   summary={name: flat[name] for name in SUMMARY_METRICS if name in flat},
                   candidates=tuple(flat.get("candidates", ())))
