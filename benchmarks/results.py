"""RESULTS.md from the committed results: every block between `<!-- generated: NAME -->` and
`<!-- end: NAME -->` is written again by its generator, and the prose around the blocks is kept.

    python -m benchmarks.results           # rewrite RESULTS.md and the frontier's and growth's plots
    python -m benchmarks.results --check   # exit 1 if RESULTS.md is not what the results give

Generators read only committed summaries (`benchmarks/results/`: the frontier's runs, `per_task.json`
from `compare_models`, `task_ceiling/*.json`, `merge/*.json`,
`growth_frontier/*.json`) or, for the batch count, the corpus itself
(deterministic, seconds); nothing trains here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import batch_negatives, compare_models, frontier, growth_frontier, merge_after_growth
from benchmarks.common import RESULTS

RESULTS_MD = Path(__file__).parent / "RESULTS.md"


def frontier_table() -> str:
    return frontier.report(frontier.read_points(frontier.GRID))


def per_task_tables() -> str:
    """Capacity at equal pairs: the per-task table and the learning curves of `per_task.json`."""
    runs = compare_models.read_summary(RESULTS / "per_task.json")
    return compare_models.median_table(runs) + "\n\n" + compare_models.curves(runs)


def ceiling_table() -> str:
    """Per task: pixel probe / feature probe / zero-shot of each model in `task_ceiling/`."""
    order = list(compare_models.read_summary(RESULTS / "per_task.json"))  # the models of the table above, in order
    rank = {name: index for index, name in enumerate(order)}
    paths = sorted((RESULTS / "task_ceiling").glob("*.json"), key=lambda path: rank.get(path.stem, len(order)))
    models = {path.stem: json.loads(path.read_text()) for path in paths}
    first = next(iter(models.values()))
    lines = ["| task | classes | chance | " + " | ".join(f"`{name}`" for name in models) + " |",
             "|---" * (len(models) + 3) + "|"]
    for task, row in first.items():
        cells = [" / ".join(f"{rows[task][k]:.3f}" for k in ("pixel_probe", "feature_probe", "zeroshot"))
                 for rows in models.values()]
        lines.append(f"| {task} | {row['classes']} | {row['chance']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


GENERATORS: dict[str, Callable[[], str]] = {"frontier": frontier_table, "batch_negatives": batch_negatives.table,
                                             "per_task": per_task_tables, "task_ceiling": ceiling_table,
                                             "merge": merge_after_growth.table,
                                             "growth_frontier": growth_frontier.table}
BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(\n<!-- end: \2 -->)", re.S)


def regenerate(text: str) -> str:
    """`text` with every generated block written again; an unknown block name is an error."""
    def block(match: re.Match) -> str:
        name = match.group(2)
        if name not in GENERATORS:
            raise SystemExit(f"RESULTS.md: no generator for the block {name!r}; known: {sorted(GENERATORS)}")
        return match.group(1) + GENERATORS[name]() + match.group(4)

    return BLOCK.sub(block, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = RESULTS_MD.read_text()
    fresh = regenerate(text)
    if args.check:
        sys.exit(0 if fresh == text else f"{RESULTS_MD} differs from what the committed results give; run "
                                         f"python -m benchmarks.results")
    RESULTS_MD.write_text(fresh)
    figures = frontier.GRID.with_suffix(".png"), growth_frontier.COMMITTED.with_suffix(".png")
    frontier.plot(frontier.read_points(frontier.GRID), figures[0])
    growth_frontier.plot(growth_frontier.committed(), figures[1])
    print(f"wrote {RESULTS_MD} ({len(BLOCK.findall(fresh))} generated blocks), {figures[0]} and {figures[1]}")


if __name__ == "__main__":
    main()
