"""Codebook usage statistics from code counts (paper Tables 2-4 report "usage").

usage = |{k : n_k > 0}| / K (fraction of codes hit at least once over an evaluation set);
perplexity = exp(H(p)), p_k = n_k / sum n (natural log; equals K for uniform use, 1 for one code);
dead codes = codes with n_k < threshold (threshold 1: never hit).
One implementation for the whole package: ``paper_repro.quantizers.stats.usage_summary``; these
functions add input checks for counts that come from outside.
The authors' code counted usage over the *training* batches of each epoch (augmented); we count over
whatever indices the caller passes (the evaluation set, by default, in the experiments).
"""
from __future__ import annotations

import torch

from ..quantizers.stats import usage_summary


def _check_counts(counts) -> torch.Tensor:
    c = torch.as_tensor(counts)
    if c.dim() != 1 or c.numel() == 0:
        raise ValueError(f"counts must be a non-empty 1-D vector of length K, got shape {tuple(c.shape)}")
    c = c.double()
    if not torch.isfinite(c).all() or (c < 0).any():
        raise ValueError("counts must be finite and non-negative")
    return c


def counts_from_indices(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Histogram (K,) int64 of code indices (any shape)."""
    if not isinstance(num_codes, int) or num_codes < 1:
        raise ValueError(f"num_codes must be a positive int, got {num_codes!r}")
    idx = torch.as_tensor(indices).reshape(-1)
    if idx.is_floating_point():
        raise ValueError(f"indices must be integers, got {idx.dtype}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_codes):
        raise ValueError(f"indices out of range [0, {num_codes})")
    return torch.bincount(idx.long(), minlength=num_codes)


def usage_from_counts(counts) -> float:
    """Fraction of codes with a positive count."""
    return usage_summary(_check_counts(counts))["usage"]


def perplexity_from_counts(counts) -> float:
    """exp of the entropy (nats) of the empirical code distribution; 0 counts contribute 0."""
    c = _check_counts(counts)
    if c.sum() <= 0:
        raise ValueError("perplexity needs at least one counted index")
    return usage_summary(c)["perplexity"]


def dead_codes(counts, threshold: float = 1) -> torch.Tensor:
    """Indices (int64) of codes whose count is below ``threshold``."""
    c = _check_counts(counts)
    return torch.nonzero(c < threshold).flatten()


def usage_from_indices(indices: torch.Tensor, num_codes: int) -> float:
    return usage_from_counts(counts_from_indices(indices, num_codes))
