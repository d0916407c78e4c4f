"""Geometry of a set of vectors (latents or codes): the measures the training probes log.

Each takes ``x`` of shape (N, D) and computes in float64 (so a value does not depend on the CPU's
float32 kernels beyond rounding of the inputs):

- ``covariance_spectrum(x)``: eigenvalues of the (biased) covariance, descending, clipped at 0;
- ``participation_ratio(x)``: ``(sum l)^2 / sum l^2`` of that spectrum, between 1 (all variance
  along one direction) and D (isotropic); the "embedding collapse" measure of seed 003
  (``../shared/seeds/003_*``: an encoder whose latents span few directions);
- ``entropy_rank(s)``: ``exp(H(s / sum s))`` of a non-negative spectrum (Roy & Vetterli's effective
  rank when ``s`` are singular values), between 1 and len(s);
- ``rms_spread(x)``: ``sqrt(mean_i ||x_i - mean(x)||^2)``, the scale of the set;
- ``stacked_fraction(x, tol)``: fraction of the rows within ``tol`` of another row (codes that sit on
  each other: NS-VQ's kernel is mean shift and gathers codes, ``theory/meanshift.py``);
- ``assignment_churn(before, after)``: fraction of entries whose code index changed (the measured
  counterpart of Sec. 3.2's latents leaving their Voronoi cells).
"""
from __future__ import annotations

import torch


def _rows(x: torch.Tensor, what: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{what} must be a non-empty (N, D) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    x = x.detach().double()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} contains NaN or Inf")
    return x


def covariance_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (D,) float64 of the biased covariance of the rows of ``x``, descending, >= 0."""
    x = _rows(x)
    xc = x - x.mean(0, keepdim=True)
    cov = xc.t() @ xc / x.shape[0]
    return torch.linalg.eigvalsh(cov).flip(0).clamp_min(0.0)


def participation_ratio(x: torch.Tensor) -> float:
    """``(sum l)^2 / sum l^2`` of the covariance spectrum (1 ... D); 0.0 when ``x`` has no spread."""
    lam = covariance_spectrum(x)
    s2 = float((lam ** 2).sum())
    return float(lam.sum()) ** 2 / s2 if s2 > 0 else 0.0


def entropy_rank(s: torch.Tensor) -> float:
    """``exp(-sum p log p)`` with ``p = s / sum s`` for a non-negative spectrum ``s``; 0.0 if all zero."""
    s = torch.as_tensor(s).detach().double().reshape(-1)
    if s.numel() == 0 or not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError("a spectrum must be a non-empty vector of finite numbers >= 0")
    total = float(s.sum())
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(torch.exp(-(p * p.log()).sum()))


def rms_spread(x: torch.Tensor) -> float:
    """Root mean squared distance of the rows of ``x`` from their mean."""
    x = _rows(x)
    return float(((x - x.mean(0, keepdim=True)) ** 2).sum(1).mean().sqrt())


#: two codes are "stacked" when closer than this many latent spreads (``rms_spread`` of the latents)
STACK_TOL = 1e-3


def stacked_fraction(x: torch.Tensor, tol: float, chunk: int = 1024) -> float:
    """Fraction of the rows of ``x`` that lie within ``tol`` (Euclidean) of another row; float64,
    ``chunk`` rows at a time (at most ``chunk`` x N distances held). 0.0 for a single row."""
    x = _rows(x)
    if not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    n = x.shape[0]
    sq = (x * x).sum(1)
    hit = 0
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        d2 = (sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.t())).clamp_min_(0.0)
        rows = torch.arange(stop - start, device=x.device)
        d2[rows, rows + start] = float("inf")
        hit += int((d2.min(1).values < tol * tol).sum())
    return hit / n


def assignment_churn(before: torch.Tensor, after: torch.Tensor) -> float:
    """Fraction of positions whose code index differs between two assignments of the same latents."""
    before, after = torch.as_tensor(before).reshape(-1), torch.as_tensor(after).reshape(-1)
    if before.shape != after.shape or before.numel() == 0:
        raise ValueError(f"two assignments of the same non-empty set are needed, got {tuple(before.shape)} "
                         f"and {tuple(after.shape)}")
    return float((before != after).double().mean())
