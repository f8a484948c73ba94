"""The corpus's zero-shot classification tasks: one per attribute family, plus compositional ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import permutations

from growclip.data.corpus import attributes as A
from growclip.data.corpus.scenes import Fixed


@dataclass(frozen=True)
class CorpusTask:
    name: str
    kind: str  # scene kind the task's images are drawn from
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    fixed: Callable[[int], Fixed]  # class index -> family values pinned for its images


def _family_task(name: str, family: A.Family, kind: str, templates: tuple[str, ...],
                 key: str | None = None) -> CorpusTask:
    """Classify one family's value (pinned in the scene as `key`, default the family's name)."""
    values, key = family.all_values, key or family.name
    return CorpusTask(name, kind, values, templates, lambda label: {key: values[label]})


RELATION_OBJECTS = (("red", "circle"), ("blue", "square"), ("green", "triangle"))
RELATION_PAIRS = tuple(
    (first, relation, second)
    for first, second in permutations(RELATION_OBJECTS, 2)
    for relation in ("left of", "above")
)


def _relation_fixed(label: int) -> Fixed:
    (colour_1, shape_1), relation, (colour_2, shape_2) = RELATION_PAIRS[label]
    return {"first_colour": colour_1, "first_shape": shape_1, "relation": relation,
            "second_colour": colour_2, "second_shape": shape_2}


COLOUR_SHAPES = tuple((colour, shape) for colour in A.COLOUR.all_values for shape in A.SHAPE.all_values)

# Prompts are ensembles over context objects (one per colour, each with a different shape), worded
# as the captions are, so a class embedding averages away everything but the asked-for attribute.
CONTEXT = tuple(zip(A.COLOUR.all_values, A.SHAPE.all_values))


def _prompts(pattern: str) -> tuple[str, ...]:
    """`pattern` with {colour}, {shape}, {shapes} filled from each context object; {{}} is the class."""
    return tuple(pattern.format(colour=c, shape=s, shapes=A.plural(s)) for c, s in CONTEXT)


TASKS = (
    _family_task("shape", A.SHAPE, "single", _prompts("a photo of a {colour} {{}}")),
    _family_task("glyph", A.GLYPH, "single", _prompts("a photo of a {colour} {{}}"), key="shape"),
    _family_task("colour", A.COLOUR, "single", _prompts("a photo of a {{}} {shape}")),
    _family_task("size", A.SIZE, "single", _prompts("a photo of a {{}} {colour} {shape}")),
    _family_task("texture", A.TEXTURE, "single", _prompts("a photo of a {colour} {{}} {shape}")),
    _family_task("position", A.POSITION, "single", _prompts("a photo of a {colour} {shape} at the {{}}")),
    _family_task("background", A.BACKGROUND, "single",
                 _prompts("a photo of a {colour} {shape} on a {{}} background")),
    _family_task("count", A.COUNT, "count", _prompts("a photo of {{}} {colour} {shapes}")),
    CorpusTask(
        "relation", "relation",
        tuple(f"a {c1} {s1} {A.RELATION_WORDS[r][0]} a {c2} {s2}" for (c1, s1), r, (c2, s2) in RELATION_PAIRS),
        ("{}", "a photo of {}", "an image of {}", "there is {}"),
        _relation_fixed,
    ),
    CorpusTask(
        "colour_shape", "single", tuple(f"{colour} {shape}" for colour, shape in COLOUR_SHAPES),
        ("a {}", "a photo of a {}", "an image of a {}", "there is a {}"),
        lambda label: {"colour": COLOUR_SHAPES[label][0], "shape": COLOUR_SHAPES[label][1]},
    ),
)
