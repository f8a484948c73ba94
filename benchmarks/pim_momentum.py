"""Training on after growth: the loss over the first steps for several PIM momenta m.

A small model (`growclip-start`) trains on stages 0-1 of the embedded corpus; it is then grown
(default: width x2, 2 shared blocks, MLP ratio 4) with m = 1, 0.9, 0.5 and 0, and each grown
model trains on the same batches of stages 0-2 for --after steps, with its AdamW moments
carried and the learning-rate schedule continuing. The small model trained on ("no growth")
is the reference. Prints the mean loss over step windows, and how far the copies made by the
width operator have drifted apart (relative norm of the difference of duplicated MLP units).

    python -m benchmarks.pim_momentum [--before 400] [--after 200] [--plot runs/pim.png]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.common import LR
from growclip.data.batches import TrainBatches
from growclip.data.corpus import EmbeddedCorpus
from growclip.data.sources import CorpusSource, PairSources
from growclip.data.tokenizer import Tokenizer
from growclip.data.transforms import CenterCrop
from growclip.growth import GrowthState, grow_state, parse_op
from growclip.model import CLIP, create_model, load_config, model_cost
from growclip.train.optim import make_optimizer, warmup_cosine
from growclip.train.owners import LRSchedule
from growclip.train.step import train_step

WINDOWS = ((1, 1), (1, 10), (11, 50), (51, 100), (101, 200))


def run(model: CLIP, optimizer, scheduler, stream: TrainBatches, steps: int) -> list[float]:
    batches = iter(stream)
    return [train_step(model, [next(batches)], optimizer, scheduler, "fp32", 1.0) for _ in range(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="growclip-start")
    parser.add_argument("--ops", nargs="+", default=["width=128", "shared_layers+2", "mlp_ratio=4"])
    parser.add_argument("--momenta", type=float, nargs="+", default=[1.0, 0.9, 0.5, 0.0])
    parser.add_argument("--before", type=int, default=400, help="steps before growth (stages 0-1)")
    parser.add_argument("--after", type=int, default=200, help="steps after growth (stages 0-2)")
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--plot", default="runs/pim_momentum.png")
    args = parser.parse_args()

    config = load_config(args.model)
    corpus = EmbeddedCorpus(0, config.image_size)
    tokenizer = Tokenizer.train(corpus.tokenizer_captions(), config.vocab_size, config.context_length)

    def stream(stages: tuple[int, ...], seed: int) -> TrainBatches:
        return TrainBatches(PairSources([CorpusSource(corpus, stages)]), tokenizer, CenterCrop(config.image_size),
                           128, seed)

    total = args.before + args.after
    model = create_model(config, seed=0)
    optimizer = make_optimizer(model, args.lr, 0.1)
    scheduler = warmup_cosine(optimizer, 100, total)
    before = run(model, optimizer, scheduler, stream((0, 1), 0), args.before)
    grown_config = None
    curves: dict[str, list[float]] = {}
    drift: dict[str, float] = {}
    for momentum in args.momenta:
        state = grow_state(GrowthState.capture(model, optimizer), [parse_op(op) for op in args.ops], momentum)
        grown, grown_config = state.build_model().train(), state.config
        grown_optimizer = make_optimizer(grown, args.lr, 0.1)
        state.load_moments(grown_optimizer, grown)
        grown_scheduler = warmup_cosine(grown_optimizer, 100, total)
        LRSchedule(grown_optimizer, grown_scheduler).load_state_dict(LRSchedule(optimizer, scheduler).state_dict())
        curves[f"m = {momentum:g}"] = run(grown, grown_optimizer, grown_scheduler, stream((0, 1, 2), 1), args.after)
        rows = grown.text_blocks[0].mlp.fc1.weight.detach()
        hidden = config.mlp_hidden * (grown_config.width // config.width)  # the units width growth copied
        drift[f"m = {momentum:g}"] = ((rows[: hidden // 2] - rows[hidden // 2 : hidden]).norm()
                                      / rows[:hidden].norm()).item()
    curves["no growth"] = run(model, optimizer, scheduler, stream((0, 1, 2), 1), args.after)  # growth copied it

    print(f"{args.model} ({model_cost(config).params / 1e6:.2f} M) trained {args.before} steps, last-10 mean loss "
          f"{statistics.mean(before[-10:]):.3f}; grown by {' '.join(args.ops)} to "
          f"{model_cost(grown_config).params / 1e6:.2f} M; then {args.after} steps on stages 0-2\n")
    print("| model | " + " | ".join(f"steps {a}-{b}" if a != b else f"step {a}" for a, b in WINDOWS)
          + " | duplicated units drift |")
    print("|---" * (len(WINDOWS) + 2) + "|")
    for name, losses in curves.items():
        cells = [f"{statistics.mean(losses[a - 1 : b]):.3f}" for a, b in WINDOWS if b <= len(losses)]
        print(f"| {name} | " + " | ".join(cells) + f" | {drift[name]:.2e} |" if name in drift else
              f"| {name} | " + " | ".join(cells) + " | - |")
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for name, losses in curves.items():
        smooth = [statistics.mean(losses[max(0, i - 9) : i + 1]) for i in range(len(losses))]
        axes.plot(range(1, len(losses) + 1), smooth, label=name)
    axes.set(title="loss after growth (10-step mean)", xlabel="steps after growth", ylabel="contrastive loss")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
