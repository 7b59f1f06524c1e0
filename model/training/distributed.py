"""Multi-process training under ``torchrun`` (PyTorch DDP), the replacement for
Matterport's ParallelModel: one process per GPU (or per CPU worker, gloo backend).

    torchrun --nproc_per_node 4 -m model.train --dataset coco --data /data/coco ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place: rank in 0..world_size-1 and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Distributed:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else a
    single-process context. CUDA uses nccl and the LOCAL_RANK GPU; CPU uses gloo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if world_size <= 1:
        return Distributed(device=torch.device("cuda" if use_cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       device=torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


def average(values: torch.Tensor, context: Distributed) -> torch.Tensor:
    """Mean of ``values`` over all processes (for logging)."""
    if context.enabled:
        values = values.clone()
        dist.all_reduce(values)
        values /= context.world_size
    return values
