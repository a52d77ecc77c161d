"""Data-parallel training through torch.distributed, started by `torchrun`.

`torchrun --standalone --nproc_per_node=2 -m core.train ...` sets RANK, WORLD_SIZE and
LOCAL_RANK in each process's environment; `init()` reads them and joins the process group
(gloo on CPU, nccl on CUDA). Without them everything runs as a single process. Only rank 0
writes files; gradients are averaged by DistributedDataParallel, and only on the last
micro-step of an accumulation (`no_sync` elsewhere), as in PyTorch's DDP notes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: not distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.backend is not None


SINGLE = DistInfo()


def available() -> bool:
    return dist.is_available()


def init(device: torch.device | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE set), else SINGLE."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return SINGLE
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    info = DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        backend=backend,
    )
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    return info


def wrap(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DistributedDataParallel around the model when distributed, else the model itself."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.local_rank] if info.backend == "nccl" else None
    return DDP(model, device_ids=ids)


def no_sync(model: torch.nn.Module, skip: bool):
    """Context that defers DDP's gradient all-reduce when `skip` (not the last micro-step)."""
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def mean(value: float, info: DistInfo, device: torch.device | None = None) -> float:
    """Average a Python float over all processes (for logging the global-batch loss)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device | None = None) -> bool:
    """True on every rank if any rank says True (so stop() on one rank stops all)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Tear the group down on a normal exit. The barrier first: rank 0 still writes (log, run
    status) after its last step, and a gloo peer torn down while the other is busy aborted once
    in CI ("terminate called without an active exception", SIGABRT after training finished)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
