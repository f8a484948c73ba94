"""`growclip merge`: a trained (and perhaps grown) checkpoint interpolated with the model it started
from (`growth.merge`), at a ratio given or the one held-out data scores best, written as a new
checkpoint that `train --resume`, `eval` and `export` read like any other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from growclip.checkpoint import SavedRun, write_checkpoint
from growclip.eval.sets import EvalSets
from growclip.eval.suite import MEAN_TOP1, RECALL, RETAINED_TOP1, EvalResults, evaluate_sets
from growclip.growth.lineage import LINEAGE, GrowthLineage, LineageError
from growclip.growth.merge import interpolate, map_start
from growclip.model.clip import CLIP
from growclip.runtime import check_output_free

MERGE = "merge"  # the checkpoint part recording how a merged model was made
DEFAULT_RATIOS = tuple(i / 10 for i in range(11))


@dataclass(frozen=True)
class MergePoint:
    ratio: float  # 0: the start, 1: the trained model
    results: EvalResults
    score: float  # `merge_score`


@dataclass(frozen=True)
class MergeResult:
    path: Path
    ratio: float
    sweep: tuple[MergePoint, ...]  # () when the ratio was given


def merge_score(results: EvalResults) -> float:
    """What the ratio is chosen by: the new data's measure (mean zero-shot top-1, else mean R@1) and,
    where retained tasks are given, their top-1, weighted equally, as WiSE-FT weighs the target
    distribution and the ones the start knew."""
    summary = results.summary
    new = summary[MEAN_TOP1] if MEAN_TOP1 in summary else mean(summary[k] for k in RECALL) if RECALL[0] in summary \
        else None
    measures = [m for m in (new, summary.get(RETAINED_TOP1)) if m is not None]
    if not measures:
        raise ValueError("nothing to choose a merge ratio on: give zero-shot, retrieval or retained-task data")
    return mean(measures)


def endpoints(start: SavedRun, trained: SavedRun) -> tuple[CLIP, CLIP, GrowthLineage]:
    """The start mapped into the trained architecture, the trained model, and the trained lineage."""
    if start.tokenizer.backend.to_str() != trained.tokenizer.backend.to_str():
        raise LineageError("the two checkpoints read text with different tokenizers: the trained model did not "
                           "start from this one")
    lineage = GrowthLineage.from_part(trained.parts.get(LINEAGE))
    steps = lineage.since(GrowthLineage.from_part(start.parts.get(LINEAGE)), start.model.config, trained.model.config)
    return map_start(start.model, steps), trained.model, lineage


def merge_checkpoints(start: SavedRun, trained: SavedRun, output: str | Path, ratio: float | None = None,
                      sets: EvalSets | None = None, ratios: Sequence[float] = DEFAULT_RATIOS,
                      precision: str = "fp32", overwrite: bool = False) -> MergeResult:
    """Write the merge of `start` and `trained` at `ratio`, or at the ratio among `ratios` whose
    evaluation on `sets` scores best (forgetting counted from the start)."""
    check_output_free(output, overwrite)
    mapped, model, lineage = endpoints(start, trained)
    points: tuple[MergePoint, ...] = ()
    if ratio is None:
        if sets is None:
            raise ValueError("give a merge ratio, or evaluation sets to choose one on")
        if sets.retained:
            sets.measure_start(mapped, start.tokenizer, precision)
        points = tuple(_point(r, evaluate_sets(interpolate(mapped, model, r), trained.tokenizer, sets, precision))
                       for r in ratios)
        ratio = max(points, key=lambda p: p.score).ratio
    record = _record(start, trained, ratio, points)
    path = write_checkpoint(output, interpolate(mapped, model, ratio), trained.tokenizer, None, {},
                            {LINEAGE: lineage.state_dict(), MERGE: record})
    return MergeResult(path, ratio, points)


def _point(ratio: float, results: EvalResults) -> MergePoint:
    return MergePoint(ratio, results, merge_score(results))


def _record(start: SavedRun, trained: SavedRun, ratio: float, points: Sequence[MergePoint]) -> dict[str, Any]:
    return {"start": str(start.path), "trained": str(trained.path), "ratio": ratio,
            "sweep": [{"ratio": p.ratio, "score": p.score, **p.results.summary} for p in points]}
