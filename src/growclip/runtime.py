"""Device, precision and seeding helpers shared by training and evaluation."""

from __future__ import annotations

import functools
import math
import os
import random
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch


def check_device_name(name: str) -> None:
    """`auto`, `cpu`, `cuda` or `cuda:N`, whatever this machine has: a config written for a GPU
    machine can be built (and checked) on a CPU one."""
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: growclip runs on cpu or cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA when there is a device, else the CPU. A device this machine lacks is a ValueError
    that says so, rather than a traceback from deep inside the first tensor copy."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"device {name!r}: no such CUDA device here (torch {torch.__version__}, "
                         f"{torch.cuda.device_count()} CUDA devices); use --device cpu or auto")
    return device


@functools.cache
def peak_flops(device: torch.device, precision: str, size: int = 1024) -> float:
    """FLOP/s of a large square matmul on `device` in `precision`, best of a few: the utilisation
    logged beside samples/s is measured against it (a CPU's or GPU's practical peak, not its datasheet)."""
    dtype = AUTOCAST_DTYPES.get(precision, torch.float32)
    a, b = (torch.randn(size, size, generator=torch.Generator().manual_seed(0)).to(device, dtype) for _ in range(2))
    best = math.inf
    for _ in range(4):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 or fp16 autocast on CPU or GPU, or a no-op for fp32."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
    return nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16's loss scaler (its range is too narrow for small gradients); disabled, a pass-through,
    for fp32 and bf16."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def warn_if_slow_precision(device: torch.device, precision: str) -> None:
    """bf16 autocast on a CPU without native bf16 matmuls (no AVX512-BF16 or AMX, as oneDNN sees it)
    is emulated: `clip-small` trained 14x slower than in fp32 on an AVX2-only EPYC. Say so before a run
    starts rather than let it crawl."""
    if precision != "bf16" or device.type != "cpu":
        return
    try:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # the check is not in this torch build: assume native
        return
    if not native:
        warnings.warn("this CPU has no native bf16 matmuls (no AVX512-BF16/AMX): bf16 runs one to two orders "
                      "of magnitude slower than fp32 here; use --precision fp32", stacklevel=2)


def ensure_writable(folder: str | Path, setting: str = "--output") -> Path:
    """Create `folder` and prove a file can be written there, so that a read-only or full disk is
    one line naming the setting at the start, not a traceback after the work is done."""
    folder = Path(folder)
    probe = folder / f".growclip-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{setting} {folder}: cannot write there ({err.strerror or err})") from None
    return folder


def check_output_free(path: str | Path, overwrite: bool) -> None:
    """Commands and the functions behind them write into a new or empty output folder; into another
    only when asked (`overwrite`), and then they replace only the files they write, never the rest."""
    path = Path(path)
    if not overwrite and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"output {path} already exists and is not empty; choose another, or allow overwriting "
                         f"(--overwrite, overwrite=True: replaces only the files growclip writes there)")


def derived_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator for one purpose (a corpus split, a chunk, a search round), independent of every
    other purpose's: NumPy's SeedSequence of (seed, *keys)."""
    return np.random.default_rng([seed, *keys])


def derive_seed(seed: int, *keys: int) -> int:
    """`derived_rng`'s rule as an integer seed, for torch and the data streams."""
    return int(derived_rng(seed, *keys).integers(2**31))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
