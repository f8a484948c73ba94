"""`growclip data`: write the embedded corpus to disk as PNG images + TSV captions, or as
webdataset shards (`png` + `txt` per key).

The TSVs use open_clip's defaults (tab separator, `filepath` and `title` columns, paths relative
to the TSV), so the same files work with `--train-data` here and in open_clip. The retrieval
split is always a TSV (`val.tsv`), as its images have several captions each.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from growclip.cli.options import COUNT, SEED_VALUE, SIZE, add_overwrite_flag, int_list
from growclip.data.corpus import DEFAULT_STAGE_SIZES, NUM_STAGES, EmbeddedCorpus
from growclip.runtime import check_output_free


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("data", help="write the embedded corpus to disk (images + TSV, or shards)",
                                 description=__doc__)
    add = parser.add_argument
    add("--output", required=True, help="folder to write into")
    add_overwrite_flag(parser)
    add("--format", choices=("tsv", "wds"), default="tsv", help="tsv: PNG files + stageK.tsv (default); "
                                                                "wds: webdataset shards stageK-NNNNNN.tar")
    add("--shard-size", type=SIZE, default=10_000, help="pairs per webdataset shard (default 10000)")
    add("--stages", type=int_list, default=tuple(range(NUM_STAGES)), help="stages to write (default all)")
    add("--stage-sizes", type=int_list, default=DEFAULT_STAGE_SIZES, help="pairs per stage")
    add("--seed", type=SEED_VALUE, default=0, help="corpus seed (default 0)")
    add("--image-size", type=SIZE, default=64, help="image side in pixels (default 64)")
    add("--retrieval-images", type=COUNT, default=500, help="held-out retrieval images (0 = none)")
    add("--zeroshot-images-per-class", type=COUNT, default=0,
        help="also write each zero-shot task as class folders (for `growclip eval --zeroshot-data`)")


def _write_tsv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["filepath", "title"])
        writer.writerows(rows)


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="png")
    return buffer.getvalue()


def _write_stage_tsv(root: Path, stage: int, corpus: EmbeddedCorpus) -> str:
    rows = []
    for index, (image, caption) in enumerate(corpus.stage(stage)):
        name = f"stage{stage}/{index:06d}.png"
        _save(image, root / name)
        rows.append((name, caption))
    _write_tsv(root / f"stage{stage}.tsv", rows)
    return str(root / f"stage{stage}.tsv")


def _write_stage_shards(root: Path, stage: int, corpus: EmbeddedCorpus, shard_size: int) -> str:
    root.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(root / f"stage{stage}-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
        for index, (image, caption) in enumerate(corpus.stage(stage)):
            sink.write({"__key__": f"{index:06d}", "png": _png_bytes(image), "txt": caption})
        last = sink.shard - 1
    return str(root / f"stage{stage}-{{000000..{last:06d}}}.tar")


def run(args: argparse.Namespace) -> int:
    check_output_free(args.output, args.overwrite)
    root = Path(args.output)
    corpus = EmbeddedCorpus(args.seed, args.image_size, args.stage_sizes)
    for stage in args.stages:
        if args.format == "wds":
            written = _write_stage_shards(root, stage, corpus, args.shard_size)
        else:
            written = _write_stage_tsv(root, stage, corpus)
        print(f"stage {stage}: {corpus.stage_sizes[stage]} pairs -> {written}")
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
