"""Per corpus task: chance, what a linear probe reads from the raw pixels and from the model's frozen
image features (the ceiling zero-shot could reach with these features), and zero-shot top-1.

A task at chance zero-shot but high under the feature probe is the text side's or the prompts'
fault; one low under both probes is the image features'; one low even on pixels is not linearly
readable from the image at all. `--supervised TASK ...` then tells whether the architecture can see
a task at this resolution: a fresh image tower of the same config trained on the task's labels
(cross-entropy, `--supervised-steps` at batch 128). It needs many images: on 4,000 shape images a
`clip-tiny` tower reached 0.96 on its training batches and 0.19 on held-out ones. High there but
low in the contrastive model's features means the contrastive training (its signal or budget) did not get to it.

    python -m benchmarks.task_ceiling --checkpoint runs/clip-small [--supervised shape position]

The probes train on images drawn with another corpus seed (`--probe-seed`) and are tested on the
zero-shot evaluation images themselves (corpus seed 0, 40 per class), so all three columns are
measured on the same images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from growclip.checkpoint.files import load_checkpoint, resolve_checkpoint
from growclip.data.corpus import EmbeddedCorpus
from growclip.data.evalsets import ZeroShotTask
from growclip.data.loader import stack_images
from growclip.eval import evaluate_zeroshot
from growclip.eval.encode import encode_images
from growclip.model import ModelConfig, create_model
from growclip.train.optim import make_optimizer, warmup_cosine


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


def supervised(config: ModelConfig, train_task: ZeroShotTask, test_task: ZeroShotTask, steps: int) -> float:
    """Top-1 of a fresh image tower + linear head trained on the task's labels, on the test images."""
    train_x, train_y = pixels(train_task, flat=False)
    test_x, test_y = pixels(test_task, flat=False)
    model = create_model(config, seed=0)
    head = torch.nn.Linear(config.embed_dim, len(test_task.classnames))
    params = [*model.parameters(), *head.parameters()]
    optimizer = make_optimizer(torch.nn.ModuleList([model, head]), 1e-3, 0.1)
    scheduler = warmup_cosine(optimizer, steps // 10, steps)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(len(train_x), (128,), generator=generator)
        loss = torch.nn.functional.cross_entropy(head(model.encode_image(train_x[batch], normalize=False)),
                                                 train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        model.eval()
        return (head(model.encode_image(test_x, normalize=False)).argmax(1) == test_y).float().mean().item()


def pixels(task: ZeroShotTask, flat: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """-> normalised images, (N, 3*S*S) when `flat` else (N, 3, S, S), and labels (N,)."""
    images, labels = zip(*(task.dataset[i] for i in range(len(task.dataset))))
    images = stack_images(list(images))
    return images.flatten(1) if flat else images, torch.as_tensor(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint or run folder")
    parser.add_argument("--train-per-class", type=int, default=100, help="probe training images per class")
    parser.add_argument("--probe-seed", type=int, default=1, help="corpus seed of the probe training images")
    parser.add_argument("--supervised", nargs="*", default=[], help="tasks to train a fresh image tower on")
    parser.add_argument("--supervised-steps", type=int, default=600)
    parser.add_argument("--supervised-per-class", type=int, default=3000,
                        help="its training images per class (fewer per class for large label sets)")
    parser.add_argument("--output", help="JSON file (default: task_ceiling.json in the checkpoint folder)")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(args.checkpoint)
    model, tokenizer, _ = load_checkpoint(checkpoint)
    model.eval()
    size = model.config.image_size
    train_tasks = EmbeddedCorpus(args.probe_seed, size).zeroshot_tasks(args.train_per_class)
    supervised_tasks = EmbeddedCorpus(args.probe_seed, size).zeroshot_tasks(args.supervised_per_class)
    test_tasks = EmbeddedCorpus(0, size).zeroshot_tasks()
    rows = {}
    print("| task | classes | chance | pixel probe | feature probe | zero-shot | supervised |\n" + "|---" * 7 + "|")
    for train_task, test_task, supervised_task in zip(train_tasks, test_tasks, supervised_tasks):
        classes = len(test_task.classnames)
        pixel = linear_probe(*pixels(train_task), *pixels(test_task), classes)
        feature = linear_probe(*encode_images(model, train_task.dataset), *encode_images(model, test_task.dataset),
                               classes)
        zeroshot = evaluate_zeroshot(model, tokenizer, test_task)["top1"]
        tower = (supervised(model.config, supervised_task, test_task, args.supervised_steps)
                 if test_task.name in args.supervised else None)
        rows[test_task.name] = {"classes": classes, "chance": 1 / classes, "pixel_probe": pixel,
                                "feature_probe": feature, "zeroshot": zeroshot, "supervised": tower}
        print(f"| {test_task.name} | {classes} | {1 / classes:.3f} | {pixel:.3f} | {feature:.3f} | {zeroshot:.3f} | "
              + ("-" if tower is None else f"{tower:.3f}") + " |", flush=True)
    output = Path(args.output) if args.output else checkpoint / "task_ceiling.json"
    output.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
