"""Scene specifications and their captions: what is drawn, and how a stage describes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from growclip.data.corpus import attributes as A

Fixed = Mapping[str, str]


@dataclass(frozen=True)
class Thing:
    """One drawn object; x, y is its centre as a fraction of the image side."""

    shape: str
    colour: str
    size: str
    texture: str
    x: float
    y: float


@dataclass(frozen=True)
class Scene:
    kind: str  # "single", "count", "pair" or "relation"
    things: tuple[Thing, ...]
    background: str
    labels: dict[str, str] = field(default_factory=dict)  # family name -> value, for zero-shot tasks


def _pick(rng: np.random.Generator, family: A.Family, stage: int, fixed: Fixed) -> str:
    if family.name in fixed:
        return fixed[family.name]
    values = family.values(stage)
    return values[rng.integers(len(values))] if values else family.default


def _pick_shape(rng: np.random.Generator, stage: int, fixed: Fixed) -> str:
    """A named shape or, once glyphs are known, a glyph in `A.GLYPH_SHARE` of objects."""
    if "shape" in fixed:
        return fixed["shape"]
    family = A.GLYPH if A.GLYPH.introduced(stage) and rng.random() < A.GLYPH_SHARE else A.SHAPE
    return _pick(rng, family, stage, fixed)


def _thing(rng: np.random.Generator, stage: int, fixed: Fixed, x: float, y: float,
           sizes: tuple[str, ...] | None = None) -> Thing:
    size = _pick(rng, A.SIZE, stage, fixed)
    if sizes is not None and size not in sizes:
        size = sizes[rng.integers(len(sizes))] if A.SIZE.introduced(stage) else A.SIZE.default
    return Thing(_pick_shape(rng, stage, fixed), _pick(rng, A.COLOUR, stage, fixed), size,
                 _pick(rng, A.TEXTURE, stage, fixed), x, y)


def scene_kinds(stage: int) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Scene kinds a stage shows and their probabilities."""
    if A.RELATION.introduced(stage):
        return ("single", "count", "pair", "relation"), (0.4, 0.2, 0.2, 0.2)
    if A.COUNT.introduced(stage):
        return ("single", "count", "pair"), (0.6, 0.2, 0.2)
    return ("single",), (1.0,)


def sample_scene(rng: np.random.Generator, stage: int, kind: str | None = None, fixed: Fixed | None = None) -> Scene:
    """A random scene of `stage`'s distribution; `fixed` pins family values (for zero-shot tasks)."""
    fixed = fixed or {}
    if kind is None:
        kinds, probs = scene_kinds(stage)
        kind = kinds[rng.choice(len(kinds), p=probs)]
    background = _pick(rng, A.BACKGROUND, stage, fixed)
    if kind == "single":
        return _single(rng, stage, fixed, background)
    if kind == "count":
        return _count(rng, stage, fixed, background)
    if kind == "pair":
        return _pair(rng, stage, fixed, background)
    if kind == "relation":
        return _relation(rng, stage, fixed, background)
    raise ValueError(f"unknown scene kind {kind!r}")


def _single(rng: np.random.Generator, stage: int, fixed: Fixed, background: str) -> Scene:
    position = _pick(rng, A.POSITION, stage, fixed)
    x, y = A.POSITION_XY[position]
    spread = 0.04 if A.POSITION.introduced(stage) else 0.1
    x, y = x + rng.uniform(-spread, spread), y + rng.uniform(-spread, spread)
    thing = _thing(rng, stage, fixed, x, y)
    labels = {"shape": thing.shape, "colour": thing.colour, "size": thing.size, "texture": thing.texture,
              "position": position, "background": background,
              "colour_shape": f"{thing.colour} {thing.shape}"}
    return Scene("single", (thing,), background, labels)


def _count(rng: np.random.Generator, stage: int, fixed: Fixed, background: str) -> Scene:
    count = _pick(rng, A.COUNT, stage, fixed)
    corners = rng.permutation(4)[: A.COUNT_NUMBER[count]]
    template = _thing(rng, stage, fixed, 0.0, 0.0, sizes=("small", "medium"))
    things = []
    for corner in corners:
        x, y = A.POSITION_XY[A.CORNERS[corner]]
        things.append(Thing(template.shape, template.colour, template.size, template.texture,
                            x + rng.uniform(-0.03, 0.03), y + rng.uniform(-0.03, 0.03)))
    labels = {"count": count, "shape": template.shape, "colour": template.colour, "background": background}
    return Scene("count", tuple(things), background, labels)


def _pair(rng: np.random.Generator, stage: int, fixed: Fixed, background: str) -> Scene:
    """Two different objects at two different named positions, each described with its own."""
    positions = A.POSITION.values(stage)
    first_at, second_at = (positions[i] for i in rng.permutation(len(positions))[:2])
    things = []
    for position in (first_at, second_at):
        x, y = A.POSITION_XY[position]
        things.append(_thing(rng, stage, fixed, x + rng.uniform(-0.03, 0.03), y + rng.uniform(-0.03, 0.03),
                             sizes=("small", "medium")))
    while (things[1].shape, things[1].colour) == (things[0].shape, things[0].colour):
        things[1] = _thing(rng, stage, {}, things[1].x, things[1].y, sizes=("small", "medium"))
    labels = {"background": background, "first_position": first_at, "second_position": second_at}
    return Scene("pair", tuple(things), background, labels)


def _relation(rng: np.random.Generator, stage: int, fixed: Fixed, background: str) -> Scene:
    """Two different objects; the first stands in `relation` to the second."""
    relation = _pick(rng, A.RELATION, stage, fixed)
    first_fixed = {k[len("first_"):]: v for k, v in fixed.items() if k.startswith("first_")}
    second_fixed = {k[len("second_"):]: v for k, v in fixed.items() if k.startswith("second_")}
    near, far = 0.27 + rng.uniform(-0.03, 0.03), 0.73 + rng.uniform(-0.03, 0.03)
    across = rng.uniform(0.3, 0.7)
    first_xy, second_xy = {
        "left of": ((near, across), (far, across)), "right of": ((far, across), (near, across)),
        "above": ((across, near), (across, far)), "below": ((across, far), (across, near)),
    }[relation]
    first = _thing(rng, stage, first_fixed, *first_xy, sizes=("small", "medium"))
    second = _thing(rng, stage, second_fixed, *second_xy, sizes=("small", "medium"))
    while (second.shape, second.colour) == (first.shape, first.colour):  # redraw, ignoring what was fixed
        second = _thing(rng, stage, {}, *second_xy, sizes=("small", "medium"))
    labels = {"relation": relation, "background": background}
    return Scene("relation", (first, second), background, labels)


# ----------------------------------------------------------------------------------- captions
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _adjectives(rng: np.random.Generator, thing: Thing, stage: int) -> tuple[str, str]:
    """(adjectives before the noun, suffix after it) for the families `stage` knows."""
    words = []
    if A.SIZE.introduced(stage):
        words.append(_choice(rng, A.SIZE_WORDS[thing.size]))
    words.append(thing.colour)
    suffix = ""
    if A.TEXTURE.introduced(stage):
        if rng.random() < 0.5:
            words.append(_choice(rng, A.TEXTURE_ADJECTIVES[thing.texture]))
        else:
            suffix = _choice(rng, A.TEXTURE_SUFFIXES[thing.texture])
    return " ".join(words), suffix


def _noun_phrase(rng: np.random.Generator, thing: Thing, stage: int) -> str:
    adjectives, suffix = _adjectives(rng, thing, stage)
    return _with_article(f"{adjectives} {thing.shape}{suffix}")


def _position_phrase(rng: np.random.Generator, position: str) -> str:
    if position == "center":
        return _choice(rng, A.CENTER_PHRASES)
    return _choice(rng, A.POSITION_PHRASES).format(position)


def _background_phrase(rng: np.random.Generator, scene: Scene, stage: int) -> str:
    if not A.BACKGROUND.introduced(stage):
        return ""
    return _choice(rng, A.BACKGROUND_PHRASES).format(scene.background)


def caption(scene: Scene, stage: int, rng: np.random.Generator) -> str:
    """One caption of `scene` in the words `stage` knows; wording is drawn from `rng`."""
    if scene.kind == "single":
        thing = scene.things[0]
        body = _noun_phrase(rng, thing, stage)
        location = _position_phrase(rng, scene.labels["position"]) if A.POSITION.introduced(stage) else ""
        background = _background_phrase(rng, scene, stage)
        tail = location + background if rng.random() < 0.5 else background + location
    elif scene.kind == "count":
        thing = scene.things[0]
        adjectives, suffix = _adjectives(rng, thing, stage)
        count = scene.labels["count"]
        noun = thing.shape if count == "one" else A.plural(thing.shape)
        body, tail = f"{count} {adjectives} {noun}{suffix}", _background_phrase(rng, scene, stage)
    elif scene.kind == "pair":
        described = [_noun_phrase(rng, thing, stage) + _position_phrase(rng, scene.labels[f"{which}_position"])
                     for thing, which in zip(scene.things, ("first", "second"))]
        if rng.random() < 0.5:
            described.reverse()
        body, tail = _choice(rng, A.PAIR_JOINERS).join(described), _background_phrase(rng, scene, stage)
    else:
        first, second = scene.things
        relation = scene.labels["relation"]
        if rng.random() < 0.5:  # describe the converse: "B right of A" for "A left of B"
            first, second, relation = second, first, CONVERSE[relation]
        words = _choice(rng, A.RELATION_WORDS[relation])
        body = f"{_noun_phrase(rng, first, stage)} {words} {_noun_phrase(rng, second, stage)}"
        tail = _background_phrase(rng, scene, stage)
    return _choice(rng, A.FRAMES).format(body + tail)
