"""One tool's side of `train_throughput.py`: builds the model once, then times a window of training
steps each time the parent asks, so that the parent can alternate tools and precisions window by
window on the same machine state. Runs in growclip's environment (`--tool growclip`) or in the peer
environment (`--tool open_clip`, where open_clip is installed).

Protocol: the parent writes a precision (`fp32` or `bf16`) per line; the worker answers one JSON line
`{"samples_per_s": ..., "peak_memory_gib": ...}` after a window of `--steps` steps (the first request
of a precision runs two untimed warm-up steps before the window). `peak` answers `{"peak_flops": ...}`, a large matmul's
FLOP/s on the same device in the precision given as the next word.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from growclip.growth import grow, grown_config
from growclip.model import PAD_ID, ModelConfig, create_model, load_config
from growclip.runtime import peak_flops, resolve_device
from growclip.train.optim import make_optimizer, warmup_cosine
from growclip.train.step import train_step

Step = Callable[[str], None]  # one optimizer step in the given precision


def growclip_step(config: ModelConfig, images: torch.Tensor, texts: torch.Tensor, args: argparse.Namespace) -> Step:
    """growclip's own training step (`growclip.train.step.train_step`), as `growclip train` runs it;
    with `--grown`, on the model that growth by `--grow` made of `--model` rather than one built fresh."""
    if args.grown:
        model = grow(create_model(load_config(args.model)), args.grow, momentum=0.9).to(images.device)
    else:
        model = create_model(config).to(images.device)
    model.set_grad_checkpointing(args.grad_checkpointing)
    forward = torch.compile(model) if args.compile else model
    optimizer = make_optimizer(model, 1e-4, 0.1)
    scheduler = warmup_cosine(optimizer, 10, 10_000)
    return lambda precision: train_step(forward, [(images, texts)], optimizer, scheduler, precision, 1.0)


def open_clip_step(config: ModelConfig, images: torch.Tensor, texts: torch.Tensor, args: argparse.Namespace) -> Step:
    """open_clip's training step as `open_clip_train.train.train_one_epoch` runs it (accum_freq 1):
    autocast forward, `ClipLoss`, backward, gradient clipping, AdamW with open_clip's parameter
    groups (no decay on gains, biases, embeddings' 1-d tensors, logit scale), logit-scale clamp."""
    import open_clip

    open_clip.add_model_config(args.openclip_configs)
    model = open_clip.create_model(args.openclip_model, device=images.device)
    loss_fn = open_clip.ClipLoss()
    exclude = [p for n, p in model.named_parameters() if p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n
               or "logit_scale" in n]
    include = [p for n, p in model.named_parameters() if not any(p is q for q in exclude)]
    optimizer = torch.optim.AdamW([{"params": exclude, "weight_decay": 0.0}, {"params": include, "weight_decay": 0.1}],
                                  lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
    texts = texts.clamp(max=model.vocab_size - 1)

    def step(precision: str) -> None:
        optimizer.zero_grad()
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            image_features, text_features, logit_scale = model(images, texts)[:3]
            loss = loss_fn(image_features, text_features, logit_scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))

    return step


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated memory on CUDA; on CPU the process's peak resident set (weights and all)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool", choices=("growclip", "open_clip"), required=True)
    parser.add_argument("--model", required=True, help="growclip preset or config .json")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--grow", nargs="+", default=[], help="growth operators: time the grown architecture")
    parser.add_argument("--grown", action="store_true", help="growclip: the grown model, not one built fresh")
    parser.add_argument("--openclip-configs", type=Path, help="folder of the open_clip model config (peer)")
    parser.add_argument("--openclip-model", help="its name (peer)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    config = grown_config(load_config(args.model), args.grow)
    torch.manual_seed(0)
    images = torch.randn(args.batch_size, 3, config.image_size, config.image_size, device=device)
    texts = torch.randint(3, config.vocab_size, (args.batch_size, config.context_length), device=device)
    texts[:, 24:] = PAD_ID
    step = (growclip_step if args.tool == "growclip" else open_clip_step)(config, images, texts, args)
    warm: set[str] = set()
    for line in sys.stdin:
        words = line.split()
        if words[0] == "peak":
            answer = {"peak_flops": peak_flops(device, words[1], size=2048)}
        else:
            precision = words[0]
            for _ in range(0 if precision in warm else 2):  # allocator, kernels, compilation
                step(precision)
            warm.add(precision)
            synchronize(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                step(precision)
            synchronize(device)
            answer = {"samples_per_s": args.steps * args.batch_size / (time.perf_counter() - start),
                      "peak_memory_gib": peak_memory_gib(device)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
