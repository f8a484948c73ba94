"""Attribute families of the embedded corpus, the stage that introduces each value, and the words
captions use for them.

A family that a stage does not know yet takes its default value and is never mentioned, so a
stage-0 model has never been told that size, texture or background exist.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    values_by_stage: tuple[tuple[str, ...], ...]  # values introduced at stage 0, 1, 2, 3
    default: str  # the value an object takes before the family is introduced

    def values(self, stage: int) -> tuple[str, ...]:
        """Every value known up to and including `stage` (empty before the family appears)."""
        return tuple(v for group in self.values_by_stage[: stage + 1] for v in group)

    def introduced(self, stage: int) -> bool:
        return bool(self.values(stage))

    @property
    def all_values(self) -> tuple[str, ...]:
        return self.values(len(self.values_by_stage) - 1)


NUM_STAGES = 4

SHAPE = Family("shape", (("circle", "square", "triangle"), ("diamond", "star", "cross"),
                         ("hexagon", "pentagon"), ("semicircle", "arrow")), "circle")
COLOUR = Family("colour", (("red", "green", "blue"), ("yellow", "purple", "orange"),
                           ("cyan", "pink"), ("brown", "teal")), "red")
SIZE = Family("size", ((), ("small", "medium", "large"), (), ()), "medium")
TEXTURE = Family("texture", ((), ("solid", "striped", "hollow"), ("dotted", "checkered"), ()), "solid")
POSITION = Family("position", ((), (), ("top left", "top right", "bottom left", "bottom right", "center"), ()),
                  "center")
BACKGROUND = Family("background", ((), (), ("black", "white", "gray"), ("noisy", "gradient")), "black")
COUNT = Family("count", ((), (), (), ("one", "two", "three", "four")), "one")
RELATION = Family("relation", ((), (), (), ("left of", "right of", "above", "below")), "left of")

FAMILIES = (SHAPE, COLOUR, SIZE, TEXTURE, POSITION, BACKGROUND, COUNT, RELATION)

RGB = {
    "red": (220, 30, 30), "green": (40, 180, 50), "blue": (40, 70, 230), "yellow": (235, 220, 40),
    "purple": (140, 50, 190), "orange": (245, 140, 20), "cyan": (40, 220, 230), "pink": (245, 130, 190),
    "brown": (130, 80, 40), "teal": (20, 128, 128),
}
SIZE_FRACTION = {"small": 0.28, "medium": 0.4, "large": 0.52}  # object diameter / image side
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
FRAMES = ("{}", "a photo of {}", "an image of {}", "there is {}", "a picture showing {}")


def plural(shape: str) -> str:
    return PLURAL.get(shape, shape + "s")
