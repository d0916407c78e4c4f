"""Multi-process data parallelism (``torchrun``) with codebook statistics kept identical on all ranks.

Rather than wrapping the model in ``DistributedDataParallel`` (whose bucketed hooks need every
parameter to take part in every step, which quantizers with unused codes or frozen encoders break),
the trainer averages gradients explicitly: one flat ``all_reduce`` of all present gradients per step.
The result is the same gradient DDP would produce (the mean over ranks of each rank's mean-loss
gradient, i.e. the gradient of the global-batch mean).

Quantizer state that is not a parameter (EMA cluster sizes and sums, dead-code replacements drawn
from a rank's own batch) would drift apart across ranks. After each optimiser step every floating
buffer is broadcast from rank 0 (the same policy as DDP's ``broadcast_buffers=True``); a quantizer
that all-reduces its own EMA statistics inside ``forward`` makes this broadcast a no-op. Code-usage
counts are summed over ranks at every epoch end (``q.usage.sync()`` and the trainer's own counts).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def env_world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from the torchrun environment; (0, 0, 1) without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, local, world


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_from_env(device: str) -> tuple[int, int, int, bool]:
    """Initialise the default process group if torchrun started us and nobody else did.

    Returns (rank, local_rank, world_size, initialised_here)."""
    rank, local, world = env_world()
    if world <= 1:
        return 0, 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), local, dist.get_world_size(), False
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend)
    return dist.get_rank(), local, dist.get_world_size(), True


def broadcast_module(module: torch.nn.Module, src: int = 0, buffers_only: bool = False) -> None:
    """Copy rank ``src``'s parameters (unless ``buffers_only``) and floating buffers to every rank."""
    if not is_distributed():
        return
    tensors = [] if buffers_only else [p.data for p in module.parameters()]
    tensors += [b for b in module.buffers() if b.is_floating_point() or not buffers_only]
    for t in tensors:
        dist.broadcast(t, src)


def allreduce_gradients(params) -> None:
    """Average the gradients of ``params`` over ranks (one flat all_reduce)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def allreduce_sum_(t: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(t)
    return t


def barrier() -> None:
    if is_distributed():
        dist.barrier()
