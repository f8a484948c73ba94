"""Training samples/s of the reference config in fp32 and bf16, measured side by side in one run.

Reference: width 256, 6 vision + 6 text layers, 32 px images, patch 4, context 32, batch 128
(the `clip-base` preset). Synthetic inputs, so only the model step is timed; fp32 and bf16
windows alternate so that both see the same machine state. Prints the median of the windows.

    python benchmarks/train_throughput.py [--model clip-base] [--windows 5] [--steps 5]
    python benchmarks/train_throughput.py --precisions fp32 --grad-checkpointing   # its speed and memory

Also prints the process's peak resident memory (CPU) or peak allocated memory (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from growclip.model import PAD_ID, create_model, load_config, train_flops_per_sample
from growclip.runtime import resolve_device
from growclip.train.optim import make_optimizer, warmup_cosine
from growclip.train.step import train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="clip-base")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--windows", type=int, default=5, help="timed windows per precision")
    parser.add_argument("--steps", type=int, default=5, help="steps per window")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute block activations")
    args = parser.parse_args()

    device = resolve_device(args.device)
    config = load_config(args.model)
    torch.manual_seed(0)
    images = torch.randn(args.batch_size, 3, config.image_size, config.image_size, device=device)
    tokens = torch.randint(3, config.vocab_size, (args.batch_size, config.context_length), device=device)
    tokens[:, 24:] = PAD_ID
    model = create_model(config).to(device)
    model.set_grad_checkpointing(args.grad_checkpointing)
    optimizer = make_optimizer(model, 1e-4, 0.1)
    scheduler = warmup_cosine(optimizer, 10, 10_000)
    speeds: dict[str, list[float]] = {precision: [] for precision in args.precisions}
    for precision in speeds:  # warm-up: allocator, kernels
        train_step(model, [(images, tokens)], optimizer, scheduler, precision, 1.0)
    for _ in range(args.windows):
        for precision, window in speeds.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, [(images, tokens)], optimizer, scheduler, precision, 1.0)
            if device.type == "cuda":
                torch.cuda.synchronize()
            window.append(args.steps * args.batch_size / (time.perf_counter() - start))
    flops = train_flops_per_sample(config)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.model}: batch {args.batch_size}, {flops / 1e9:.2f} GFLOP per training sample, {name}, "
          f"torch {torch.__version__}" + (", gradient checkpointing" if args.grad_checkpointing else ""))
    for precision, window in speeds.items():
        median = statistics.median(window)
        print(f"{precision}: median {median:8.1f} samples/s  ({median * flops / 1e12:.3f} TFLOP/s)  "
              f"windows: {', '.join(f'{s:.1f}' for s in window)}")
    if len(speeds) == 2:
        print(f"bf16 / fp32: {statistics.median(speeds['bf16']) / statistics.median(speeds['fp32']):.2f}x")
    print(f"peak memory: {peak_memory_gib(device):.2f} GiB")


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated memory on CUDA; on CPU the process's peak resident set (weights and all)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


if __name__ == "__main__":
    main()
