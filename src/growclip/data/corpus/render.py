"""Draw a scene into an RGB uint8 array with PIL (shape masks) and NumPy (colour, texture, noise)."""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from growclip.data.corpus import attributes as A
from growclip.data.corpus.glyphs import GRID, glyph_patterns
from growclip.data.corpus.scenes import Scene, Thing


def _regular(corners: int, radius: float = 1.0, phase: float = -np.pi / 2) -> list[tuple[float, float]]:
    angles = phase + 2 * np.pi * np.arange(corners) / corners
    return [(radius * np.cos(a), radius * np.sin(a)) for a in angles]


def _star() -> list[tuple[float, float]]:
    outer, inner = _regular(5), _regular(5, 0.45, -np.pi / 2 + np.pi / 5)
    return [p for pair in zip(outer, inner) for p in pair]


# Polygons in unit coordinates (centre 0, radius 1, y down); circle and semicircle are drawn as arcs.
POLYGONS = {
    "square": [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)],
    "triangle": [(0.0, -1.0), (1.0, 0.8), (-1.0, 0.8)],
    "diamond": [(0.0, -1.0), (0.8, 0.0), (0.0, 1.0), (-0.8, 0.0)],
    "star": _star(),
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
              (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "hexagon": _regular(6, phase=0.0),
    "pentagon": _regular(5),
    "arrow": [(-1, -0.3), (0.2, -0.3), (0.2, -0.75), (1, 0), (0.2, 0.75), (0.2, 0.3), (-1, 0.3)],
}
GLYPH_PATTERNS = dict(zip(A.GLYPH.all_values, glyph_patterns(len(A.GLYPH.all_values))))


def shape_masks(thing: Thing, image_size: int, radius_jitter: float) -> list[np.ndarray]:
    """Boolean (S, S) masks of the object's parts: the silhouette of a named shape, or each
    filled cell of a glyph (textured one by one, so the cell pattern shows in every texture)."""
    radius = A.SIZE_FRACTION[thing.size] * image_size / 2 * radius_jitter
    cx, cy = thing.x * image_size, thing.y * image_size
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if thing.shape in GLYPH_PATTERNS:
        edges = np.rint(np.asarray(box[:2])[:, None] + 2 * radius / GRID * np.arange(GRID + 1)).astype(int)
        edges = np.clip(edges, 0, image_size)  # (x or y, GRID + 1) pixel edges of the cells
        masks = []
        for row, column in sorted(GLYPH_PATTERNS[thing.shape]):
            mask = np.zeros((image_size, image_size), dtype=bool)
            mask[edges[1, row]:edges[1, row + 1], edges[0, column]:edges[0, column + 1]] = True
            masks.append(mask)
        return masks
    canvas = Image.new("L", (image_size, image_size), 0)
    draw = ImageDraw.Draw(canvas)
    if thing.shape == "circle":
        draw.ellipse(box, fill=255)
    elif thing.shape == "semicircle":
        draw.pieslice((box[0], box[1] + radius / 2, box[2], box[3] + radius / 2), 180, 360, fill=255)
    else:
        draw.polygon([(cx + radius * x, cy + radius * y) for x, y in POLYGONS[thing.shape]], fill=255)
    return [np.asarray(canvas) > 0]


def _erode(mask: np.ndarray, pixels: int) -> np.ndarray:
    """`mask` less a border `pixels` wide (4-neighbourhood)."""
    inner = mask.copy()
    for _ in range(pixels):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return inner


@cache
def _patterns(image_size: int) -> dict[str, np.ndarray]:
    period = max(4, image_size // 8)
    half = period // 2
    y, x = np.mgrid[:image_size, :image_size]
    return {
        "striped": (y % period) < half,
        "dotted": ((x % period) < half) & ((y % period) < half),
        "checkered": ((x // half + y // half) % 2) == 0,
    }


def texture_mask(mask: np.ndarray, texture: str, image_size: int) -> np.ndarray:
    """Pixels of the silhouette painted in the object's colour: patterns keep an outline (one
    pixel per 32 of image side), so the shape stays readable whatever fills it."""
    if texture == "solid":
        return mask
    outline = max(1, image_size // 32)
    inner = _erode(mask, outline)
    if texture == "hollow":
        return mask & ~_erode(inner, outline)
    return (mask & ~inner) | (inner & _patterns(image_size)[texture])


def background(kind: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    shape = (image_size, image_size, 1)
    if kind == "black":
        return np.full(shape, rng.integers(0, 30), dtype=np.int16)
    if kind == "white":
        return np.full(shape, rng.integers(225, 256), dtype=np.int16)
    if kind == "gray":
        return np.full(shape, rng.integers(110, 150), dtype=np.int16)
    if kind == "noisy":
        return rng.integers(40, 200, size=shape, dtype=np.int16)
    if kind == "gradient":
        low, high = rng.integers(0, 60), rng.integers(170, 256)
        ramp = np.linspace(low, high, image_size, dtype=np.float32).astype(np.int16)
        return np.broadcast_to(ramp[:, None, None] if rng.random() < 0.5 else ramp[None, :, None], shape)
    raise ValueError(f"unknown background {kind!r}")


def render(scene: Scene, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) uint8 image; colours, sizes and pixels are jittered by `rng`."""
    image = np.repeat(background(scene.background, image_size, rng), 3, axis=2)
    for thing in scene.things:
        parts = shape_masks(thing, image_size, radius_jitter=rng.uniform(0.9, 1.1))
        colour = np.asarray(A.RGB[thing.colour], np.int16) + rng.integers(-A.COLOUR_JITTER, A.COLOUR_JITTER + 1, 3)
        for part in parts:
            image[texture_mask(part, thing.texture, image_size)] = colour
    image += rng.integers(-8, 9, size=image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)
