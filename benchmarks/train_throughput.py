"""Training step speed: samples/s of one full optimizer step on synthetic inputs, fp32 and bf16, and
with `--peer` open_clip's own step on the same architecture and batch, side by side in one run.

Reference: `clip-base` (width 256, 6 vision + 6 text layers, 64 px images, patch 8, context 40),
batch 128. Each tool runs in a worker process of its own environment (open_clip's in the peer
environment of `peer_openclip.py`, made on first use) that builds its model once; the windows of
every tool and precision alternate, so that all see the same machine state. Prints the median of
the windows, the TFLOP/s they reach and the utilisation against the device's peak (a 2048^2 matmul
on the same device and precision), the ratio to open_clip, and each worker's peak memory.

    python -m benchmarks.train_throughput [--model clip-base] [--windows 5] [--steps 5]
    python -m benchmarks.train_throughput --peer --compile       # growclip, eager and compiled, and open_clip
    python -m benchmarks.train_throughput --precisions fp32 --grad-checkpointing   # its speed and memory
    python -m benchmarks.train_throughput --model clip-small --grow width=256 text_layers+2   # grown vs fresh
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.common import BATCH
from benchmarks.peer_env import DEFAULT_ENV, ensure_peer_env
from growclip.growth import grown_config
from growclip.interop.open_clip import open_clip_config
from growclip.model import load_config, train_flops_per_sample
from growclip.runtime import resolve_device

HERE = Path(__file__).resolve().parent
OPENCLIP_VOCAB = 49408  # open_clip's default tokenizer


class Worker:
    """A `throughput_worker.py` process that times a window of steps on request."""

    def __init__(self, python: Path | str, flags: list[str]) -> None:
        self.process = subprocess.Popen([str(python), str(HERE / "throughput_worker.py"), *flags],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, request: str) -> dict:
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            sys.exit(f"throughput worker exited ({self.process.wait()}) on {request!r}")
        return json.loads(answer)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="clip-base")
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--windows", type=int, default=5, help="timed windows per tool and precision")
    parser.add_argument("--steps", type=int, default=5, help="steps per window")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    parser.add_argument("--grad-checkpointing", action="store_true", help="growclip: recompute block activations")
    parser.add_argument("--compile", action="store_true", help="also time growclip with torch.compile")
    parser.add_argument("--grow", nargs="+", help="time the architecture these growth operators make of --model, "
                        "built fresh and grown (a grown model must be as fast per FLOP)")
    parser.add_argument("--peer", action="store_true", help="also time open_clip's step (its own environment)")
    parser.add_argument("--peer-env", default=str(DEFAULT_ENV), help="open_clip's virtual environment")
    parser.add_argument("--output", default="runs/throughput", help="folder for the open_clip model config")
    return parser.parse_args()


def start_workers(args: argparse.Namespace) -> dict[str, Worker]:
    common = ["--model", args.model, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
              "--device", args.device] + (["--grow", *args.grow] if args.grow else [])
    growclip = [sys.executable, ["--tool", "growclip", *common] + ["--grad-checkpointing"] * args.grad_checkpointing]
    workers = {"growclip": Worker(*growclip)}
    if args.compile:
        workers["growclip, compiled"] = Worker(growclip[0], [*growclip[1], "--compile"])
    if args.grow:
        workers["growclip, grown"] = Worker(growclip[0], [*growclip[1], "--grown"])
    if args.peer:
        configs, name = Path(args.output).resolve() / "openclip_configs", "growclip-throughput"
        configs.mkdir(parents=True, exist_ok=True)
        config = grown_config(load_config(args.model), args.grow or [])
        (configs / f"{name}.json").write_text(json.dumps(open_clip_config(config, OPENCLIP_VOCAB), indent=2))
        workers["open_clip"] = Worker(ensure_peer_env(Path(args.peer_env)),
                                      ["--tool", "open_clip", *common, "--openclip-configs", str(configs),
                                       "--openclip-model", name])
    return workers


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    workers = start_workers(args)
    speeds = {(tool, p): [] for tool in workers for p in args.precisions}
    memory: dict[str, float] = {}
    for _ in range(args.windows):
        for tool, precision in speeds:
            answer = workers[tool].ask(precision)
            speeds[tool, precision].append(answer["samples_per_s"])
            memory[tool] = answer["peak_memory_gib"]
    peaks = {p: workers["growclip"].ask(f"peak {p}")["peak_flops"] for p in args.precisions}
    for worker in workers.values():
        worker.close()

    config = grown_config(load_config(args.model), args.grow or [])
    flops = train_flops_per_sample(config)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    grown = f" grown by {' '.join(args.grow)} ({config.describe()})" if args.grow else ""
    print(f"{args.model}{grown}: batch {args.batch_size}, {flops / 1e9:.2f} GFLOP per training sample, {name}, "
          f"growclip torch {torch.__version__}" + (", gradient checkpointing" if args.grad_checkpointing else ""))
    print(f"median of {args.windows} windows of {args.steps} steps\n")
    print("| tool | precision | samples/s | TFLOP/s | utilisation | windows |\n|---|---|---|---|---|---|")
    for (tool, precision), window in speeds.items():
        median = statistics.median(window)
        print(f"| {tool} | {precision} | {median:.1f} | {median * flops / 1e12:.3f} | "
              f"{median * flops / peaks[precision]:.0%} | {', '.join(f'{s:.1f}' for s in window)} |")
    print("\npeak (2048^2 matmul): " + ", ".join(f"{p} {peak / 1e12:.3f} TFLOP/s" for p, peak in peaks.items()))
    median = {key: statistics.median(window) for key, window in speeds.items()}
    if len(args.precisions) == 2:
        for tool in workers:
            print(f"{tool} bf16 / fp32: {median[tool, 'bf16'] / median[tool, 'fp32']:.2f}x")
    for tool in (t for t in workers if args.peer and t != "open_clip"):
        for precision in args.precisions:
            print(f"{tool} / open_clip, {precision}: {median[tool, precision] / median['open_clip', precision]:.2f}x")
    print("peak memory: " + ", ".join(f"{tool} {gib:.2f} GiB" for tool, gib in memory.items()))


if __name__ == "__main__":
    main()
