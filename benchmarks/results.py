"""RESULTS.md from the committed results: every block between `<!-- generated: NAME -->` and
`<!-- end: NAME -->` is written again by its generator, and the prose around the blocks is kept.

    python -m benchmarks.results           # rewrite RESULTS.md and the frontier's plot
    python -m benchmarks.results --check   # exit 1 if RESULTS.md is not what the results give

Generators read only committed summaries (`benchmarks/results/`) or, for the batch count, the
corpus itself (deterministic, seconds); nothing trains here.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import batch_negatives, frontier

RESULTS_MD = Path(__file__).parent / "RESULTS.md"


def frontier_table() -> str:
    return frontier.report(frontier.read_points(frontier.GRID))


GENERATORS: dict[str, Callable[[], str]] = {"frontier": frontier_table, "batch_negatives": batch_negatives.table}
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
    figure = frontier.GRID.with_suffix(".png")
    frontier.plot(frontier.read_points(frontier.GRID), figure)
    print(f"wrote {RESULTS_MD} ({len(BLOCK.findall(fresh))} generated blocks) and {figure}")


if __name__ == "__main__":
    main()
