"""How much a contrastive batch asks of each attribute: the share of scenes that have a batch-mate
differing from them in that attribute alone (the one negative only that attribute tells apart).

InfoNCE rewards an attribute by the negatives it separates that nothing else separates; where
almost every pair of a batch already differs in several attributes, the easy ones (colour, readable
from mean pixel values) are enough and a hard one (shape, which needs spatial features) earns
little. Scenes are drawn as training draws them (`sample_scene` of each stage); places are compared
on a 4 x 4 grid, so jitter within a place does not count as a difference.

    python -m benchmarks.batch_negatives [--batch-size 128] [--batches 30]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import BATCH
from growclip.data.corpus import DEFAULT_STAGE_SIZES, NUM_STAGES
from growclip.data.corpus.scenes import Scene, sample_scene

ATTRIBUTES = ("shape", "colour", "size", "texture", "place", "background")


def description(scene: Scene, without: str | None = None) -> tuple:
    """What a caption can tell of the scene, less the attribute `without`."""
    parts: list = [scene.kind, None if without == "background" else scene.background]
    for thing in scene.things:
        values = {"shape": thing.shape, "colour": thing.colour, "size": thing.size, "texture": thing.texture,
                  "place": (round(thing.x * 4), round(thing.y * 4))}
        parts += [value for name, value in values.items() if name != without]
    return tuple(parts)


def alone_share(batch: list[Scene], attribute: str) -> float:
    """Share of the batch's scenes with a batch-mate that differs from them in `attribute` only."""
    full = [description(scene) for scene in batch]
    rest = [description(scene, attribute) for scene in batch]
    hits = sum(any(rest[j] == rest[i] and full[j] != full[i] for j in range(len(batch)) if j != i)
               for i in range(len(batch)))
    return hits / len(batch)


def table(batch_size: int = BATCH, batches: int = 30, seed: int = 0) -> str:
    """One row per stage and one for the whole corpus: each attribute's share."""
    rng = np.random.default_rng(seed)
    lines = ["| batches of | " + " | ".join(ATTRIBUTES) + " |", "|---" * (len(ATTRIBUTES) + 1) + "|"]
    weights = np.asarray(DEFAULT_STAGE_SIZES) / sum(DEFAULT_STAGE_SIZES)
    draws = {f"stage {stage}": lambda stage=stage: stage for stage in range(NUM_STAGES)}
    draws["the whole corpus (stages mixed by size)"] = lambda: rng.choice(NUM_STAGES, p=weights)
    for label, stage in draws.items():
        drawn = [[sample_scene(rng, stage()) for _ in range(batch_size)] for _ in range(batches)]
        shares = [np.mean([alone_share(batch, attribute) for batch in drawn]) for attribute in ATTRIBUTES]
        lines.append(f"| {label} | " + " | ".join(f"{share:.3f}" for share in shares) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--batches", type=int, default=30, help="batches drawn per stage")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"share of scenes with a batch-mate that differs in the attribute alone (batch {args.batch_size}, "
          f"{args.batches} batches a stage, seed {args.seed})\n")
    print(table(args.batch_size, args.batches, args.seed))


if __name__ == "__main__":
    main()
