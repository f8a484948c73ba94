"""Embedded-corpus generation speed: rendered image-caption pairs per second on one core.

    python benchmarks/corpus_throughput.py [--pairs 4000] [--repeats 5] [--image-size 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from growclip.data.corpus import NUM_STAGES, EmbeddedCorpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4000, help="pairs per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    torch.set_num_threads(1)
    corpus = EmbeddedCorpus(0, args.image_size, (args.pairs * args.repeats,) * NUM_STAGES)
    print(f"image size {args.image_size}, {args.pairs} pairs per repeat, one core")
    for stage in range(NUM_STAGES):
        data, rates = corpus.stage(stage), []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            for index in range(repeat * args.pairs, (repeat + 1) * args.pairs):
                data[index]
            rates.append(args.pairs / (time.perf_counter() - start))
        print(f"stage {stage}: median {statistics.median(rates):7.0f} pairs/s  "
              f"(repeats: {', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
