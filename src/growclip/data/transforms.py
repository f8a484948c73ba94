"""Image transforms with PIL + NumPy: decode, resize, centre crop, and normalise a batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

# CLIP's RGB statistics; the corpus is not natural imagery, but users bring their own photos.
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def resize_center_crop(image: Image.Image, image_size: int) -> np.ndarray:
    """Shorter side to `image_size` (bicubic), centre square crop, as (S, S, 3) uint8."""
    image = image.convert("RGB")
    scale = image_size / min(image.size)
    width, height = max(image_size, round(image.width * scale)), max(image_size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - image_size) // 2, (height - image_size) // 2
    return np.asarray(image.crop((left, top, left + image_size, top + image_size)))


def load_image(path: str | Path, image_size: int) -> np.ndarray:
    with Image.open(path) as image:
        return resize_center_crop(image, image_size)


_MEAN_255 = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
_STD_255 = torch.tensor(STD).view(1, 3, 1, 1) * 255


def normalize(images: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 normalised."""
    return (images.permute(0, 3, 1, 2).float() - _MEAN_255) / _STD_255
