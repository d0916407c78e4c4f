"""Straight-through estimators (paper Sec. 3.1 and Eq. 18 / Supp. 9 Eq. A21).

Both are written so that the forward value is *exactly* the code (``sg(c) + (z - sg(z))``: the
second term is an exact zero), which is what makes ``out.quantized == q.lookup(out.indices)``
hold bit for bit; the gradients are those of the paper's forms:

- plain STE ``Q = z + sg(c - z)``: dQ/dz = I, no gradient to c;
- modified STE (Eq. 18 / A21) ``Q = z + sg(c - z) + (2/d) c - sg((2/d) c)``: dQ/dz = I and the
  selected code also receives ``(2/d)`` times the upstream gradient (the "delay-free" correction,
  Eq. A19). ``d`` is B*H*W ("paper": "batch size times number of latent patches") or B*H*W*D
  ("official": the authors' code divides by every latent element).
"""
from __future__ import annotations

import torch

STE_D_CHOICES = ("paper", "official")


def straight_through(z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Plain STE: forward value ``code``, gradient identity to ``z``, none to ``code``."""
    return code.detach() + (z - z.detach())


def check_ste_d(ste_d):
    if ste_d in STE_D_CHOICES:
        return ste_d
    if isinstance(ste_d, (int, float)) and not isinstance(ste_d, bool) and ste_d > 0:
        return ste_d
    raise ValueError(f"ste_d must be 'paper' (d = B*H*W), 'official' (d = B*H*W*D) or a positive number, got {ste_d!r}")


def resolve_ste_d(ste_d, num_vectors: int, code_dim: int) -> float:
    """The ``d`` of Eq. 18 for a batch of ``num_vectors`` = B*H*W latents of dimension ``code_dim``."""
    if ste_d == "paper":
        return float(num_vectors)
    if ste_d == "official":
        return float(num_vectors * code_dim)
    return float(check_ste_d(ste_d))


def modified_straight_through(z: torch.Tensor, code: torch.Tensor, d: float) -> torch.Tensor:
    """Modified STE, Eq. 18 / A21: forward value ``code``; grads: I to ``z``, (2/d) g to ``code``."""
    scaled = code * (2.0 / d)
    return code.detach() + (z - z.detach()) + (scaled - scaled.detach())
