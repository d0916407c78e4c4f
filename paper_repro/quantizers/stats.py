"""Code-usage statistics shared by every quantizer (one helper, resettable by the trainer).

``CodeUsage`` is a submodule of each quantizer (``q.usage``) so its counts follow ``.to(device)``
and are saved in checkpoints. Counts are kept as two int64 buffers: what was already summed across
processes (``synced``) and what this process added since (``local``); :meth:`CodeUsage.sync`
all-reduces only the local part, so calling it twice never double counts.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn


def distributed_ready() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes when torch.distributed is initialised; no-op otherwise."""
    if distributed_ready():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def usage_summary(counts: torch.Tensor, threshold: float = 1) -> dict:
    """The one rule for code statistics, used by the quantizers, the trainer and the metrics.

    From per-code assignment counts (K,): ``usage`` = fraction of codes counted at least
    ``threshold`` times (1: at least once); ``dead_codes`` = how many are counted fewer than
    ``threshold`` times; ``perplexity`` = exp(H(p)), p_k = n_k / sum n (natural log; K for uniform
    use, 1 for a single code, 0 when nothing was counted)."""
    c = counts.double()
    alive = c >= threshold
    total = c.sum()
    if total > 0:
        p = c / total
        p = p[p > 0]
        ppl = math.exp(-(p * p.log()).sum().item())
    else:
        ppl = 0.0
    return {"usage": float(alive.double().mean()), "perplexity": ppl, "dead_codes": int((~alive).sum())}


def batch_perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """exp(entropy) of the code histogram of one batch (a detached 0-dim tensor)."""
    counts = torch.bincount(indices.reshape(-1), minlength=num_codes).float()
    p = counts / counts.sum().clamp_min(1.0)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


class CodeUsage(nn.Module):
    """Accumulated code counts: ``update``, ``counts``, ``reset``, ``fraction_used``, ``perplexity``,
    ``dead_codes``, ``sync``."""

    def __init__(self, num_codes: int):
        super().__init__()
        self.num_codes = int(num_codes)
        self.register_buffer("synced_counts", torch.zeros(self.num_codes, dtype=torch.long))
        self.register_buffer("local_counts", torch.zeros(self.num_codes, dtype=torch.long))

    @torch.no_grad()
    def update(self, indices: torch.Tensor) -> None:
        if indices.dtype != torch.long:
            raise ValueError(f"CodeUsage.update expects int64 indices, got {indices.dtype}")
        flat = indices.reshape(-1).to(self.local_counts.device)
        if flat.numel() == 0:
            return
        self.local_counts += torch.bincount(flat, minlength=self.num_codes)[: self.num_codes]

    @property
    def counts(self) -> torch.Tensor:
        """(K,) int64: assignments per code since the last :meth:`reset`."""
        return self.synced_counts + self.local_counts

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def reset(self) -> None:
        self.synced_counts.zero_()
        self.local_counts.zero_()

    @torch.no_grad()
    def sync(self) -> None:
        """Sum the counts added since the last sync over all processes (no-op without DDP)."""
        delta = self.local_counts.clone()
        all_reduce_sum_(delta)
        self.synced_counts += delta
        self.local_counts.zero_()

    def fraction_used(self, threshold: int = 1) -> float:
        """Fraction of codes counted at least ``threshold`` times (:func:`usage_summary`)."""
        return usage_summary(self.counts, threshold)["usage"]

    def perplexity(self) -> float:
        """exp(entropy) of the accumulated code distribution (:func:`usage_summary`)."""
        return usage_summary(self.counts)["perplexity"]

    def dead_codes(self, threshold: int = 1) -> torch.Tensor:
        """int64 indices of codes counted fewer than ``threshold`` times (:func:`usage_summary`)."""
        return torch.nonzero(self.counts < threshold, as_tuple=False).reshape(-1)

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}"
