"""Glyphs: procedurally made objects with made-up names, the corpus's open-ended vocabulary.

A glyph is a pattern of filled cells in a 3 x 3 grid (4 to 6 cells, touching at least at a
corner, so it reads as one object), named by a pronounceable nonsense word. Any two glyphs differ
by a whole cell at least, a ninth of the object, yet there are hundreds of them and their names
say nothing about their look: as with the nouns of web captions, each must be learnt on its own.
Names and patterns come from fixed generators, not from the corpus seed, so a glyph means the same
pattern in every corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import combinations, pairwise

import numpy as np

_NAME_SEED, _PATTERN_SEED = 20_261_202, 20_261_203
_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"
GRID = 3
CELLS = tuple(range(4, 7))  # filled cells per glyph
PLUS = frozenset({(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)})  # the named "cross": not a glyph

Pattern = frozenset[tuple[int, int]]  # filled (row, column) cells


def glyph_names(per_stage: Sequence[int]) -> tuple[tuple[str, ...], ...]:
    """Distinct three-syllable names (consonant + vowel each), grouped by the stage that introduces them."""
    rng = np.random.default_rng(_NAME_SEED)
    names: list[str] = []
    while len(names) < sum(per_stage):
        name = "".join(_CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(len(_VOWELS))]
                       for _ in range(3))
        if name not in names:
            names.append(name)
    bounds = np.cumsum([0, *per_stage])
    return tuple(tuple(names[a:b]) for a, b in pairwise(bounds))


def _touching(pattern: Pattern) -> bool:
    """Whether the cells form one piece, counting corner contact."""
    start = next(iter(pattern))
    seen, todo = {start}, [start]
    while todo:
        row, column = todo.pop()
        for cell in ((row + dr, column + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)):
            if cell in pattern and cell not in seen:
                seen.add(cell)
                todo.append(cell)
    return len(seen) == len(pattern)


@cache
def glyph_patterns(count: int) -> tuple[Pattern, ...]:
    """`count` patterns in a fixed random order (a longer list extends a shorter one)."""
    grid = [(row, column) for row in range(GRID) for column in range(GRID)]
    candidates = [frozenset(cells) for size in CELLS for cells in combinations(grid, size)]
    candidates = [p for p in candidates if _touching(p) and p != PLUS]
    if count > len(candidates):
        raise ValueError(f"only {len(candidates)} glyph patterns exist, asked for {count}")
    order = np.random.default_rng(_PATTERN_SEED).permutation(len(candidates))
    return tuple(candidates[i] for i in order[:count])
