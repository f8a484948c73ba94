"""Does data loading keep up with training? Loader samples/s against training samples/s.

Writes the embedded corpus to a temporary folder as JPEG files + TSV and as webdataset shards
(source images larger than the model's input, so every sample is decoded, randomly cropped and
resized), then measures, median of several windows:
  - loader alone: batches/s of the training stream with 0, 1 and 2 workers (TSV), 2 workers (shards);
  - training alone: the reference config's bf16 step on one pre-made batch (compute only);
  - training fed by the stream with 2 workers (what a run really gets).

    python -m benchmarks.loader_throughput [--model clip-base] [--pairs 4096] [--source-size 128]
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import webdataset as wds
from PIL import Image

from benchmarks.common import BATCH
from growclip.data.batches import TrainBatches
from growclip.data.corpus import EmbeddedCorpus
from growclip.data.sources import open_sources
from growclip.data.tokenizer import Tokenizer
from growclip.data.transforms import RandomResizedCrop
from growclip.model import create_model, load_config
from growclip.train.optim import make_optimizer, warmup_cosine
from growclip.train.step import train_step


def write_corpus(root: Path, pairs: int, source_size: int) -> tuple[str, str]:
    """-> (TSV path, shard pattern) of the same `pairs` JPEG pairs."""
    corpus = EmbeddedCorpus(0, source_size, (pairs, 1, 1, 1))
    (root / "images").mkdir()
    rows = []
    with wds.ShardWriter(str(root / "shard-%04d.tar"), maxcount=1024, verbose=0) as sink:
        for index, (image, caption) in enumerate(corpus.stage(0)):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="jpeg", quality=90)
            (root / "images" / f"{index:06d}.jpg").write_bytes(buffer.getvalue())
            sink.write({"__key__": f"{index:06d}", "jpg": buffer.getvalue(), "txt": caption})
            rows.append((f"images/{index:06d}.jpg", caption))
        shards = sink.shard
    with (root / "pairs.tsv").open("w", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows([("filepath", "title"), *rows])
    return str(root / "pairs.tsv"), str(root / f"shard-{{0000..{shards - 1:04d}}}.tar")


def windows(step: Callable[[], int], count: int, seconds: float) -> list[float]:
    """Samples/s of `count` windows of about `seconds` each, after one untimed step."""
    step()
    speeds = []
    for _ in range(count):
        samples, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            samples += step()
        speeds.append(samples / (time.perf_counter() - start))
    return speeds


def report(name: str, speeds: list[float]) -> float:
    median = statistics.median(speeds)
    print(f"{name:<44} median {median:8.1f} samples/s   windows: {', '.join(f'{s:.0f}' for s in speeds)}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="clip-base")
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--source-size", type=int, default=128, help="side of the JPEGs on disk")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of a timed window")
    args = parser.parse_args()

    config = load_config(args.model)
    with tempfile.TemporaryDirectory() as folder:
        table, shards = write_corpus(Path(folder), args.pairs, args.source_size)
        tokenizer = Tokenizer.train(open_sources(table).captions(10_000), config.vocab_size, config.context_length)
        transform = RandomResizedCrop(config.image_size)

        def stream(spec: str, workers: int) -> Iterator:
            return iter(TrainBatches(open_sources(spec), tokenizer, transform, args.batch_size, 0, workers))

        print(f"{args.pairs} pairs of {args.source_size}px JPEG -> {config.image_size}px, batch {args.batch_size}, "
              f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
        for spec, kind, workers in ((table, "TSV", 0), (table, "TSV", 1), (table, "TSV", 2), (shards, "shards", 2)):
            batches = stream(spec, workers)
            report(f"loader, {kind}, {workers} workers", windows(lambda b=batches: len(next(b)[0]), args.windows,
                                                                    args.seconds))

        model = create_model(config)
        optimizer = make_optimizer(model, 1e-4, 0.1)
        scheduler = warmup_cosine(optimizer, 10, 100_000)
        fixed = next(stream(table, 0))

        def step(batch: tuple[torch.Tensor, torch.Tensor]) -> int:
            train_step(model, [batch], optimizer, scheduler, "bf16", 1.0)
            return len(batch[0])

        compute = report(f"training {args.model} bf16, one pre-made batch", windows(lambda: step(fixed),
                                                                                   args.windows, args.seconds))
        batches = stream(table, 2)
        fed = report(f"training {args.model} bf16, fed by 2 workers",
                     windows(lambda: step(next(batches)), args.windows, args.seconds))
        print(f"fed / compute-only: {fed / compute:.2f}")


if __name__ == "__main__":
    main()
