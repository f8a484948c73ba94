"""Evaluation: zero-shot classification and image-text retrieval."""

from growclip.eval.retrieval import evaluate_retrieval
from growclip.eval.suite import EvalResults, evaluate, evaluate_sets, format_results
from growclip.eval.zeroshot import evaluate_zeroshot

__all__ = ["EvalResults", "evaluate", "evaluate_retrieval", "evaluate_sets", "evaluate_zeroshot", "format_results"]
