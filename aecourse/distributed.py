"""Training on several processes with torchrun, kept out of the training loop.

    torchrun --nproc_per_node 2 -m aecourse.train vae

Every process trains the same model on its own slice of every batch, and
DistributedDataParallel (DDP) averages their gradients in `backward()`. `process_group`
joins the job's process group (NCCL on GPUs, gloo on CPUs) and gives a `Distributed`,
which `aecourse.train.fit` uses to wrap the model and to slice the batches; `all_reduce`,
`broadcast` and `all_gather` are the collectives that the loop, its checkpoints and the
VQ-VAE's codebook statistics need. On one process each of them does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from aecourse.data import Batches


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce(t: Tensor) -> Tensor:
    """t summed, in place, over the processes of a torchrun job (t itself on one process)."""
    if _active():
        dist.all_reduce(t)
    return t


def broadcast(t: Tensor) -> Tensor:
    """Process 0's t, in place, on every process of a torchrun job (t itself on one)."""
    if _active():
        dist.broadcast(t, src=0)
    return t


def all_gather(obj: Any) -> list[Any]:
    """Every process's obj (any picklable object), in rank order: [obj] on one process."""
    if not _active():
        return [obj]
    objects: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(objects, obj)
    return objects


@dataclass
class Distributed:
    """This process's place in a run: process `rank` of `world_size`."""

    rank: int = 0
    world_size: int = 1
    # this process's slice of the current batch, times world_size / the batch's size
    share: float = field(default=1.0, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"expected 0 <= rank < world_size, got {self.rank}, {self.world_size}")

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model as the loss sees it: itself on one process; else a DDP wrapper whose
        backward() averages the processes' gradients, each weighted by its `share`."""
        if self.world_size == 1:
            return model
        net = _DDP(model, device_ids=[device] if device.type == "cuda" else None)
        net.register_comm_hook(self, _weighted_mean)
        return net

    def shard(self, batches: Batches) -> Batches | _Shards:
        """This process's contiguous slice of each batch (the batches themselves on one)."""
        if self.world_size == 1:
            return batches
        if batches.batch_size < self.world_size:
            raise ValueError(
                f"batch_size {batches.batch_size} cannot be split between "
                f"{self.world_size} processes; use at least {self.world_size}"
            )
        return _Shards(batches, self)


@contextmanager
def process_group(device: torch.device) -> Iterator[tuple[Distributed, torch.device]]:
    """Within the block, this process's part in its torchrun job (WORLD_SIZE > 1) and its
    device, the GPU numbered LOCAL_RANK when `device` is CUDA; (Distributed(), device)
    outside torchrun. A process group set up before is used and left as it is."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield Distributed(), device
        return
    if device.type == "cuda":  # one GPU per process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Distributed(dist.get_rank(), dist.get_world_size()), device
    finally:
        if started:
            dist.destroy_process_group()


class _Shards:
    """Batches cut into world_size contiguous slices; this process gets slice `rank`."""

    def __init__(self, batches: Batches, ddp: Distributed) -> None:
        self.batches, self.ddp = batches, ddp

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        world_size, rank = self.ddp.world_size, self.ddp.rank
        for batch in self.batches:
            n = len(batch[0])  # the global batch
            if n < world_size:  # a last batch too small to split: skipped by every process
                continue
            part = tuple(t.tensor_split(world_size)[rank] for t in batch)
            self.ddp.share = len(part[0]) * world_size / n
            yield part


def _weighted_mean(ddp: Distributed, bucket):  # noqa: ANN001, ANN202 (DDP reads the hints)
    """DDP's gradient average with each process's gradient weighted by its share of the
    batch, so that a batch split unevenly (5 = 3 + 2) still gives the gradient of the
    global batch's mean loss: sum_r (n_r / n) grad_r = mean_r (share_r grad_r).
    A communication hook: dist.GradBucket -> torch.futures.Future[Tensor]."""
    grads = bucket.buffer().mul_(ddp.share / ddp.world_size)
    future = dist.all_reduce(grads, async_op=True).get_future()
    return future.then(lambda done: done.value()[0])


class _DDP(DistributedDataParallel):
    """DDP whose unknown attributes fall through to the model (`model.corrupt`,
    `model.config`), so the loss functions work unchanged. Gradients are averaged only
    through `forward`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)
