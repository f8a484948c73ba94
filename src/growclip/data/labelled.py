"""A user's labelled images for zero-shot evaluation: a folder of class folders, or a table of image path
and label read with the same options as training tables (open_clip's `filepath` column by default)."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from growclip.data.evalsets import ZeroShotTask
from growclip.data.pairs import Skip, read_image
from growclip.data.sources import ReaderOptions
from growclip.data.sources.base import IMAGE_SUFFIXES
from growclip.data.sources.table import default_separator, quoting_for
from growclip.data.transforms import CenterCrop

logger = logging.getLogger(__name__)
DEFAULT_TEMPLATES = (
    "a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a close-up photo of a {}.",
    "a low resolution photo of a {}.", "a drawing of a {}.",
)


class LabelledDataError(ValueError):
    pass


class LabelledImages(Dataset):
    """Items: ((S, S, 3) uint8, label), or None for an image that cannot be read (skipped and counted)."""

    def __init__(self, paths: list[Path], labels: list[int], image_size: int) -> None:
        self.paths, self.labels, self.image_size = paths, labels, image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int] | None:
        """Read as training reads a pair's image: 16-bit or float images are skipped, not clipped."""
        image = read_image(self.paths[index], CenterCrop(self.image_size), partial(np.random.default_rng, 0))
        return None if isinstance(image, Skip) else (image, self.labels[index])


def _from_folder(root: Path) -> tuple[list[Path], list[str]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise LabelledDataError(f"{root}: expected one sub-folder per class, found none")
    paths, names, left_out = [], [], Counter()
    for name in classes:
        for path in sorted(p for p in (root / name).rglob("*") if p.is_file()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                names.append(name)
            else:
                left_out[path.suffix.lower() or path.name] += 1
    if left_out:
        logger.warning("%s: left out %d files not read as images (%s)", root, left_out.total(),
                       ", ".join(f"{kind}: {count}" for kind, count in left_out.most_common()))
    return paths, names


def _from_table(path: Path, options: ReaderOptions) -> tuple[list[Path], list[str]]:
    image, label = options.csv_img_key, options.csv_label_key
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            separator = options.csv_separator or default_separator(path)
            reader = csv.DictReader(handle, delimiter=separator, quoting=quoting_for(separator))
            if not reader.fieldnames or not {image, label} <= set(reader.fieldnames):
                raise LabelledDataError(f"{path}: needs a header with columns {image!r} and {label!r}, found "
                                        f"{reader.fieldnames} (name others with --csv-img-key / --csv-label-key, "
                                        f"the separator with --csv-separator)")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:  # a label read wrongly would be a wrong class
        raise LabelledDataError(f"{path}: unreadable table ({err})") from None
    kept = [(row[image].strip(), row[label].strip()) for row in rows if (row.get(image) or "").strip()
            and (row.get(label) or "").strip()]
    if len(kept) < len(rows):
        logger.warning("%s: left out %d rows without an image path or a label", path, len(rows) - len(kept))
    return [path.parent / p for p, _ in kept], [label for _, label in kept]


def labelled_task(source: str | Path, image_size: int, templates: tuple[str, ...] = DEFAULT_TEMPLATES,
                  options: ReaderOptions | None = None) -> ZeroShotTask:
    """Class names are folder names or CSV labels, with underscores read as spaces."""
    source = Path(source)
    if source.is_dir():
        paths, names = _from_folder(source)
    elif source.is_file():
        paths, names = _from_table(source, options or ReaderOptions())
    else:
        raise LabelledDataError(f"{source}: no such folder or CSV file")
    if not paths:
        raise LabelledDataError(f"{source}: no labelled images found")
    classes = sorted(set(names))
    index = {name: i for i, name in enumerate(classes)}
    return ZeroShotTask(source.stem or source.name, [c.replace("_", " ") for c in classes], templates,
                        LabelledImages(paths, [index[n] for n in names], image_size))


def read_templates(path: str | Path) -> tuple[str, ...]:
    """One template per line with `{}` for the class name; blank lines and '#' comments ignored."""
    templates = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{}" not in line:
            raise LabelledDataError(f"{path}:{number}: template {line!r} has no '{{}}' for the class name")
        templates.append(line)
    if not templates:
        raise LabelledDataError(f"{path}: no templates found")
    return tuple(templates)
