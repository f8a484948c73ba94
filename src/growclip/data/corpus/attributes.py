"""Attribute families of the embedded corpus, the stage that introduces each value, and the words
captions use for them.

A family that a stage does not know yet takes its default value and is never mentioned, so a
stage-0 model has never been told that size, texture or background exist. Besides ten named
shapes, objects can be glyphs: procedurally made cell patterns with made-up names (`glyphs.py`),
dozens more each stage, so that the concept space outgrows a small model as web data does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from growclip.data.corpus.glyphs import glyph_names


@dataclass(frozen=True)
class Family:
    name: str
    values_by_stage: tuple[tuple[str, ...], ...]  # values introduced at stage 0, 1, 2, 3
    default: str  # the value an object takes before the family is introduced
    known: tuple[tuple[str, ...], ...] = field(init=False, repr=False)  # values(stage), drawn from per object

    def __post_init__(self) -> None:
        known = tuple(tuple(v for group in self.values_by_stage[: k + 1] for v in group)
                      for k in range(len(self.values_by_stage)))
        object.__setattr__(self, "known", known)

    def values(self, stage: int) -> tuple[str, ...]:
        """Every value known up to and including `stage` (empty before the family appears)."""
        return self.known[min(stage, len(self.known) - 1)]

    def introduced(self, stage: int) -> bool:
        return bool(self.values(stage))

    @property
    def all_values(self) -> tuple[str, ...]:
        return self.values(len(self.values_by_stage) - 1)


NUM_STAGES = 4
GLYPHS_BY_STAGE = (6, 24, 60, 150)  # new glyphs per stage: 240 in all

SHAPE = Family("shape", (("circle", "square", "triangle"), ("diamond", "star", "cross"),
                         ("hexagon", "pentagon"), ("semicircle", "arrow")), "circle")
GLYPH = Family("glyph", glyph_names(GLYPHS_BY_STAGE), "")
COLOUR = Family("colour", (("red", "green", "blue"), ("yellow", "purple", "orange"),
                           ("cyan", "pink", "brown", "teal"), ("navy", "olive", "lime", "maroon", "gold", "violet")),
                "red")
SIZE = Family("size", ((), ("small", "medium", "large"), (), ()), "medium")
TEXTURE = Family("texture", ((), ("solid", "striped", "hollow"), ("dotted", "checkered"), ()), "solid")
POSITION = Family("position", ((), (), ("top left", "top right", "bottom left", "bottom right", "center"), ()),
                  "center")
BACKGROUND = Family("background", ((), (), ("black", "white", "gray"), ("noisy", "gradient")), "black")
COUNT = Family("count", ((), (), ("one", "two"), ("three", "four")), "one")
RELATION = Family("relation", ((), (), (), ("left of", "right of", "above", "below")), "left of")

FAMILIES = (SHAPE, GLYPH, COLOUR, SIZE, TEXTURE, POSITION, BACKGROUND, COUNT, RELATION)
GLYPH_SHARE = 0.5  # of objects drawn as a glyph once glyphs are known (the rest: named shapes)

RGB = {
    "red": (220, 30, 30), "green": (40, 180, 50), "blue": (40, 70, 230), "yellow": (235, 220, 40),
    "purple": (140, 50, 190), "orange": (245, 140, 20), "cyan": (40, 220, 230), "pink": (245, 130, 190),
    "brown": (130, 80, 40), "teal": (20, 128, 128),
    # stage 3: shades close to earlier colours, a fine-grained distinction
    "navy": (20, 30, 120), "olive": (120, 125, 30), "lime": (160, 245, 70), "maroon": (120, 20, 45),
    "gold": (215, 165, 25), "violet": (190, 130, 250),
}
COLOUR_JITTER = 12  # per channel, so neighbouring shades stay apart
SIZE_FRACTION = {"small": 0.32, "medium": 0.44, "large": 0.6}  # object diameter / image side
POSITION_XY = {"top left": (0.27, 0.27), "top right": (0.73, 0.27), "bottom left": (0.27, 0.73),
               "bottom right": (0.73, 0.73), "center": (0.5, 0.5)}
CORNERS = ("top left", "top right", "bottom left", "bottom right")
COUNT_NUMBER = {"one": 1, "two": 2, "three": 3, "four": 4}

PLURAL = {"cross": "crosses"}

# Caption wording: several phrasings per family, drawn at random for each caption.
SIZE_WORDS = {"small": ("small", "little", "tiny"), "medium": ("medium", "medium-sized"),
              "large": ("large", "big", "huge")}
TEXTURE_ADJECTIVES = {"solid": ("solid", "filled"), "striped": ("striped",), "hollow": ("hollow", "outlined"),
                      "dotted": ("dotted", "spotted"), "checkered": ("checkered",)}
TEXTURE_SUFFIXES = {"solid": (" filled in",), "striped": (" with stripes",), "hollow": (" drawn in outline",),
                    "dotted": (" with dots",), "checkered": (" with a checkered pattern",)}
POSITION_PHRASES = (" in the {} corner", " at the {}", " placed {}")
CENTER_PHRASES = (" in the center", " in the middle", " at the center")
BACKGROUND_PHRASES = (" on a {} background", " against a {} backdrop", ", {} background")
RELATION_WORDS = {"left of": ("to the left of", "left of"), "right of": ("to the right of", "right of"),
                  "above": ("above", "over"), "below": ("below", "under")}
PAIR_JOINERS = (" and ", ", and ", " together with ")
FRAMES = ("{}", "a photo of {}", "an image of {}", "there is {}", "a picture showing {}", "a drawing of {}",
          "a rendering of {}", "here we see {}")


def plural(shape: str) -> str:
    return PLURAL.get(shape, shape + "s")
