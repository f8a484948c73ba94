"""A small real captioned-image set for the peer benchmark, so that growclip's defaults are judged on
real images and not only on the synthetic corpus: scikit-learn's handwritten digits (1,797 8x8 scans
from UCI, shipped inside the scikit-learn package, so nothing is downloaded), written as open_clip
reads data: PNG files and a TSV with `filepath` and `title`. 1,400 scans are training pairs, each
captioned in one of several wordings; the other 397 are class folders for zero-shot evaluation.

    pip install -e ".[bench]"     # scikit-learn
    python -m benchmarks.digits_data --output runs/digits
    python -m benchmarks.peer_openclip --train-data runs/digits/train.tsv --zeroshot-data runs/digits/zeroshot \\
        --epochs 40 --batch-size 64 --model clip-tiny --output runs/peer-digits
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTIONS = ("a handwritten digit {word}", "the number {digit} written by hand", "a scan of a handwritten {word}",
            "a {word}, written by hand", "the digit {digit}", "a handwritten {digit}")
TRAIN_PAIRS = 1400


def write_digits(output: Path, seed: int = 0) -> tuple[Path, Path]:
    """-> (the training TSV, the zero-shot class folders); the split and wordings follow `seed`."""
    from sklearn.datasets import load_digits  # a benchmark dependency, not growclip's

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    images = (digits.images * (255 / 16)).round().astype(np.uint8)  # ink 0-16 -> 0-255, white on black
    rows = []
    for rank, index in enumerate(order):
        label = int(digits.target[index])
        if rank < TRAIN_PAIRS:
            path = Path("train") / f"{index:04d}.png"
            template = CAPTIONS[int(rng.integers(len(CAPTIONS)))]
            rows.append((str(path), template.format(word=WORDS[label], digit=label)))
        else:
            path = Path("zeroshot") / WORDS[label] / f"{index:04d}.png"
        (output / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[index], mode="L").save(output / path)
    table = output / "train.tsv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["filepath", "title"])
        writer.writerows(rows)
    return table, output / "zeroshot"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/digits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the caption wordings")
    args = parser.parse_args()
    table, zeroshot = write_digits(Path(args.output), args.seed)
    print(f"training pairs: {table}\nzero-shot classes: {zeroshot}")


if __name__ == "__main__":
    main()
