"""Several processes, one run: PyTorch's own engine (`torchrun` + DistributedDataParallel).

`torchrun --nproc_per_node N -m growclip train ...` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK set; each joins the process group (gloo on CPU, NCCL on CUDA), reads its own lanes of
the data, and DDP averages the gradients. Rank 0 alone writes checkpoints, logs and reports.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import safetensors.torch
import torch
import torch.distributed as dist

TIMEOUT = timedelta(minutes=10)  # a rank that died makes the others stop within this, not hang


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def launched_size() -> int:
    """How many processes torchrun started for this job (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_world(device: torch.device) -> World:
    """Join the process group torchrun describes in the environment; one process without it."""
    if launched_size() == 1:
        return SINGLE
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT, **_attempt_store())
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _attempt_store() -> dict:
    """After a torchrun restart, the agent's store still holds the addresses the dead attempt's
    ranks published, and a new rank could read one and fail to connect (seen with gloo: "connectFullMesh
    failed ... Connection refused"). Each attempt gets its own key prefix in the agent's store."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                           timeout=TIMEOUT)
    store = dist.PrefixStore(f"growclip/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", client)
    return {"store": store, "rank": int(os.environ["RANK"]), "world_size": int(os.environ["WORLD_SIZE"])}


def process_device(device: torch.device, world: World) -> torch.device:
    """Each process on a node takes its own GPU (LOCAL_RANK); CPU processes share the CPU."""
    if device.type == "cuda" and world.distributed:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def _collective_device() -> torch.device:
    """NCCL reduces CUDA tensors only; gloo CPU ones."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sync_flags(flags: list[bool], world: World) -> list[bool]:
    """Each flag true on every rank when it is true on any (a signal or a save timer one rank saw),
    so that all ranks save and stop at the same step."""
    if not world.distributed:
        return flags
    values = torch.tensor([int(f) for f in flags], device=_collective_device())
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def gather_objects(value: Any, world: World) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    if not world.distributed:
        return [value]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, value)
    return gathered


def mean_over_ranks(value: float, world: World) -> float:
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return tensor.item() / world.size


def broadcast_object(value: Any, world: World) -> Any:
    """Rank 0's `value` on every rank: one decision, made once."""
    if not world.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def check_same_on_every_rank(tensors: Mapping[str, torch.Tensor], world: World, what: str) -> None:
    """Fail loudly unless every rank holds bit-identical `tensors` (a rebuilt model after growth):
    ranks that drift apart would silently train different models under one DDP wrapper."""
    if not world.distributed:
        return
    serialised = safetensors.torch.save({name: t.detach().cpu().contiguous() for name, t in tensors.items()})
    digests = gather_objects(hashlib.sha256(serialised).hexdigest(), world)
    if len(set(digests)) > 1:
        differing = [rank for rank, d in enumerate(digests) if d != digests[0]]
        raise RuntimeError(f"{what}: ranks {differing} differ from rank 0 (they must be bit-identical)")
