"""`growclip data`: write the embedded corpus to disk as PNG images + TSV captions.

The TSVs use open_clip's defaults (tab separator, `filepath` and `title` columns, paths relative
to the TSV), so the same files work with `--train-data` here and in open_clip.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from growclip.cli.options import int_list
from growclip.data.corpus import DEFAULT_STAGE_SIZES, NUM_STAGES, EmbeddedCorpus


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("data", help="write the embedded corpus to disk as images + TSV",
                                 description=__doc__)
    add = parser.add_argument
    add("--output", required=True, help="folder to write into")
    add("--stages", type=int_list, default=tuple(range(NUM_STAGES)), help="stages to write (default all)")
    add("--stage-sizes", type=int_list, default=DEFAULT_STAGE_SIZES, help="pairs per stage")
    add("--seed", type=int, default=0, help="corpus seed (default 0)")
    add("--image-size", type=int, default=32, help="image side in pixels (default 32)")
    add("--retrieval-images", type=int, default=500, help="held-out retrieval images (0 = none)")
    add("--zeroshot-images-per-class", type=int, default=0,
        help="also write each zero-shot task as class folders (for `growclip eval --zeroshot-data`)")


def _write_tsv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["filepath", "title"])
        writer.writerows(rows)


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def run(args: argparse.Namespace) -> int:
    root = Path(args.output)
    corpus = EmbeddedCorpus(args.seed, args.image_size, args.stage_sizes)
    for stage in args.stages:
        rows = []
        for index, (image, caption) in enumerate(corpus.stage(stage)):
            name = f"stage{stage}/{index:06d}.png"
            _save(image, root / name)
            rows.append((name, caption))
        _write_tsv(root / f"stage{stage}.tsv", rows)
        print(f"stage {stage}: {len(rows)} pairs -> {root / f'stage{stage}.tsv'}")
    if args.retrieval_images:
        retrieval = corpus.retrieval_set(args.retrieval_images)
        for index, image in enumerate(retrieval.images):
            _save(image, root / f"val/{index:06d}.png")
        _write_tsv(root / "val.tsv", [(f"val/{i:06d}.png", text)
                                      for i, text in zip(retrieval.text_to_image, retrieval.texts)])
        print(f"retrieval: {len(retrieval.images)} images, {len(retrieval.texts)} captions -> {root / 'val.tsv'}")
    if args.zeroshot_images_per_class:
        for task in corpus.zeroshot_tasks(args.zeroshot_images_per_class):
            for index, (image, label) in enumerate(task.dataset):
                _save(image, root / "zeroshot" / task.name / task.classnames[label] / f"{index:05d}.png")
        print(f"zero-shot tasks -> {root / 'zeroshot'}/<task>/<class>/")
    return 0
