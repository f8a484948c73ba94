"""Image transforms with PIL + NumPy: resize and crop (centre or random-resized), normalise a batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

# CLIP's RGB statistics; the corpus is not natural imagery, but users bring their own photos.
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


EXIF_ORIENTATION = 0x0112
WHITE = (255, 255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as a viewer shows it, in 8-bit RGB: turned upright by its EXIF orientation (phone
    photos are stored sideways and tagged), and its transparent parts over white, where a plain
    conversion would show whatever colour the hidden pixels happen to hold."""
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba)
    return image.convert("RGB")


def resize_center_crop(image: Image.Image, image_size: int) -> np.ndarray:
    """Shorter side to `image_size` (bicubic), centre square crop, as (S, S, 3) uint8: the pixels
    open_clip's (torchvision's) evaluation transform gives, so an imported CLIP sees what it was
    trained on. The longer side is truncated and the crop's offset rounded half to even, as there."""
    image = to_rgb(image)
    short, long = sorted(image.size)
    long = int(image_size * long / short)
    width, height = (image_size, long) if image.width <= image.height else (long, image_size)
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = round((width - image_size) / 2), round((height - image_size) / 2)
    return np.asarray(image.crop((left, top, left + image_size, top + image_size)))


@dataclass(frozen=True)
class CenterCrop:
    """Evaluation transform (the rng is unused; it keeps one signature for every transform)."""

    image_size: int

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        return resize_center_crop(image, self.image_size)


@dataclass(frozen=True)
class RandomResizedCrop:
    """Training transform: a random box of `scale` x the area and aspect ratio in `ratio`, resized
    to a square; falls back to the centre crop when ten draws do not fit (very elongated images)."""

    image_size: int
    scale: tuple[float, float] = (0.9, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        image = to_rgb(image)
        width, height = image.size
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = width * height * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            box_w, box_h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < box_w <= width and 0 < box_h <= height:
                left, top = int(rng.integers(0, width - box_w + 1)), int(rng.integers(0, height - box_h + 1))
                box = (left, top, left + box_w, top + box_h)
                return np.asarray(image.resize((self.image_size, self.image_size), Image.Resampling.BICUBIC, box=box))
        return resize_center_crop(image, self.image_size)


_MEAN_255 = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
_STD_255 = torch.tensor(STD).view(1, 3, 1, 1) * 255


def normalize(images: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 normalised. Made contiguous before the arithmetic:
    broadcasting over the permuted (channels-last) layout is four times slower."""
    return images.permute(0, 3, 1, 2).contiguous().float().sub_(_MEAN_255).div_(_STD_255)
