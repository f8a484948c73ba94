"""Per corpus task: chance, what a linear probe reads from the raw pixels and from the model's frozen
image features (the ceiling zero-shot could reach with these features), and zero-shot top-1.

A task at chance zero-shot but high under the feature probe is the text side's or the prompts'
fault; one low under both probes is the image features' (the model, budget or resolution); one low
even on pixels is not linearly readable from the image at all.

    python benchmarks/task_ceiling.py --checkpoint runs/clip-small [--train-per-class 100]

The probes train on images drawn with another corpus seed (`--probe-seed`) and are tested on the
zero-shot evaluation images themselves (corpus seed 0, 40 per class), so all three columns are
measured on the same images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import ZeroShotTask
from growclip.data.loader import stack_images
from growclip.eval import evaluate_zeroshot
from growclip.eval.encode import encode_images
from growclip.train.checkpoint import load_checkpoint, resolve_checkpoint


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 classes: int, weight_decay: float = 1e-3) -> float:
    """Multinomial logistic regression (standardised inputs, L2, L-BFGS) -> top-1 on the test set."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    linear = torch.nn.Linear(train_x.shape[1], classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(train_x), train_y) + weight_decay * linear.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (linear(test_x).argmax(1) == test_y).float().mean().item()


def pixels(task: ZeroShotTask) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(task.dataset[i] for i in range(len(task.dataset))))
    return stack_images(list(images)).flatten(1), torch.as_tensor(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint or run folder")
    parser.add_argument("--train-per-class", type=int, default=100, help="probe training images per class")
    parser.add_argument("--probe-seed", type=int, default=1, help="corpus seed of the probe training images")
    parser.add_argument("--output", help="JSON file (default: task_ceiling.json in the checkpoint folder)")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(args.checkpoint)
    model, tokenizer, _ = load_checkpoint(checkpoint)
    model.eval()
    size = model.config.image_size
    train_tasks = EmbeddedCorpus(args.probe_seed, size).zeroshot_tasks(args.train_per_class)
    test_tasks = EmbeddedCorpus(0, size).zeroshot_tasks()
    rows = {}
    print("| task | classes | chance | pixel probe | feature probe | zero-shot |\n|---|---|---|---|---|---|")
    for train_task, test_task in zip(train_tasks, test_tasks):
        classes = len(test_task.classnames)
        pixel = linear_probe(*pixels(train_task), *pixels(test_task), classes)
        feature = linear_probe(*encode_images(model, train_task.dataset), *encode_images(model, test_task.dataset),
                               classes)
        zeroshot = evaluate_zeroshot(model, tokenizer, test_task)["top1"]
        rows[test_task.name] = {"classes": classes, "chance": 1 / classes, "pixel_probe": pixel,
                                "feature_probe": feature, "zeroshot": zeroshot}
        print(f"| {test_task.name} | {classes} | {1 / classes:.3f} | {pixel:.3f} | {feature:.3f} | {zeroshot:.3f} |",
              flush=True)
    output = Path(args.output) if args.output else checkpoint / "task_ceiling.json"
    output.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
