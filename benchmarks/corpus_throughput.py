"""Embedded-corpus generation speed: image-caption pairs per second on one core, rendered, and
read again from the corpus's in-memory cache (as every epoch after a run's first does).

    python -m benchmarks.corpus_throughput [--pairs 4000] [--repeats 5] [--image-size 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils.data import Dataset

from growclip.data.corpus import NUM_STAGES, EmbeddedCorpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4000, help="pairs per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    torch.set_num_threads(1)
    sizes = (args.pairs * args.repeats,) * NUM_STAGES
    rendered = EmbeddedCorpus(0, args.image_size, sizes, cache_mib=0)
    cached = EmbeddedCorpus(0, args.image_size, sizes, cache_mib=2**20)  # room for every pair
    print(f"image size {args.image_size}, {args.pairs} pairs per repeat, one core")
    for stage in range(NUM_STAGES):
        for index in range(sizes[stage]):  # fill the cache
            cached.stage(stage)[index]
        render_rate, cached_rate = (_median_rate(corpus.stage(stage), args.pairs, args.repeats)
                                    for corpus in (rendered, cached))
        print(f"stage {stage}: median {render_rate:7.0f} pairs/s rendered, {cached_rate:9.0f} from the cache")


def _median_rate(data: Dataset, pairs: int, repeats: int) -> float:
    rates = []
    for repeat in range(repeats):
        start = time.perf_counter()
        for index in range(repeat * pairs, (repeat + 1) * pairs):
            data[index]
        rates.append(pairs / (time.perf_counter() - start))
    return statistics.median(rates)


if __name__ == "__main__":
    main()
