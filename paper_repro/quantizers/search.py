"""Nearest-code search: ``argmin_k ||z - c_k||^2`` without ever materialising a large N x K block.

Squared distances are expanded as ``||z||^2 - 2 z.C^T + ||C||^2`` and computed with one
``torch.addmm`` per chunk of latents; the chunk height is chosen so that one N_chunk x K block of
fp32 distances stays under ``chunk_bytes`` (default 256 MiB: K = 262,144 codes -> 256 rows/chunk).

Precision: fp32 by default. ``precision="bf16"`` / ``"fp16"`` run only the z.C^T matmul in that
dtype (accumulated to fp32 afterwards); this is an explicit option and quantizers record it in
``q.config``. The ``||z||^2`` term does not change the argmin, so :func:`nearest_code` adds it only
to the returned minimum distances.
"""
from __future__ import annotations

from typing import Iterator

import torch

DEFAULT_CHUNK_BYTES = 256 * 2**20
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


EXACT = {"fp32": torch.float32, "fp64": torch.float64}   # searches computed in full precision


def check_search_precision(precision: str) -> str:
    """A precision for :func:`nearest_code` / :func:`distance_chunks`: the quantizers' (fp32, bf16,
    fp16) or "fp64" (the exact-maths pages compute in float64)."""
    if precision not in PRECISIONS and precision not in EXACT:
        raise ValueError(f"search precision must be one of {sorted(set(PRECISIONS) | set(EXACT))}, got {precision!r}")
    return precision


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"search precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return precision


def check_chunk_bytes(chunk_bytes) -> int:
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 4:
        raise ValueError(f"search chunk_bytes must be an int >= 4 (bytes), got {chunk_bytes!r}")
    return chunk_bytes


def rows_per_chunk(num_codes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Number of latents per chunk so that a rows x K fp32 block fits in ``chunk_bytes``."""
    return max(1, int(chunk_bytes) // (4 * int(num_codes)))


def row_chunks(n: int, num_codes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` row ranges of an N x K block, each under ``chunk_bytes`` of fp32."""
    rows = rows_per_chunk(num_codes, chunk_bytes)
    for start in range(0, n, rows):
        yield start, min(start + rows, n)


def lowp_matmul(a: torch.Tensor, b_t: torch.Tensor, precision: str) -> torch.Tensor:
    """``a @ b_t`` in fp32, or with both operands cast to bf16 / fp16 and the result back in fp32
    (``b_t`` may be given already cast)."""
    if precision == "fp32":
        return a @ b_t
    low = PRECISIONS[precision]
    return (a.to(low) @ b_t.to(low)).float()


def _check(z: torch.Tensor, codebook: torch.Tensor) -> None:
    if z.dim() != 2 or codebook.dim() != 2 or z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"search expects z (N, D) and codebook (K, D) with the same D; got {tuple(z.shape)} "
            f"and {tuple(codebook.shape)}"
        )


@torch.no_grad()
def distance_chunks(
    z: torch.Tensor,
    codebook: torch.Tensor,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    precision: str = "fp32",
    include_z_norm: bool = True,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(start, stop, dist)`` with ``dist[i, k] = ||z[start + i] - c_k||^2`` (fp32; fp64 with
    ``precision="fp64"``).

    With ``include_z_norm=False`` the (row-constant) ``||z||^2`` term is left out, which keeps the
    argmin. Full distances are clamped at 0 (the expansion can round slightly negative).
    """
    _check(z, codebook)
    check_search_precision(precision)
    work = EXACT.get(precision, torch.float32)
    z = z.detach().to(work)
    c = codebook.detach().to(work)
    c_sq = c.pow(2).sum(1).unsqueeze(0)
    c_t = c.t() if precision in EXACT else c.to(PRECISIONS[precision]).t()
    for start, stop in row_chunks(z.shape[0], c.shape[0], chunk_bytes):
        zc = z[start:stop]
        if precision in EXACT:           # the same GEMM with the bias and the -2 fused in
            dist = torch.addmm(c_sq, zc, c_t, beta=1.0, alpha=-2.0)
        else:
            dist = lowp_matmul(zc, c_t, precision).mul_(-2.0).add_(c_sq)
        if include_z_norm:
            dist.add_(zc.pow(2).sum(1, keepdim=True)).clamp_min_(0.0)
        yield start, stop, dist


@torch.no_grad()
def nearest_code(
    z: torch.Tensor,
    codebook: torch.Tensor,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    precision: str = "fp32",
    return_distances: bool = False,
):
    """Index of the nearest code for every row of ``z`` (N, D) -> int64 (N,).

    With ``return_distances=True`` also returns the minimum squared distances (N,) fp32 (fp64 with
    ``precision="fp64"``).
    """
    n = z.shape[0]
    idx = torch.empty(n, dtype=torch.long, device=z.device)
    work = EXACT.get(precision, torch.float32)
    mins = torch.empty(n, dtype=work, device=z.device) if return_distances else None
    for start, stop, dist in distance_chunks(
        z, codebook, chunk_bytes=chunk_bytes, precision=precision, include_z_norm=False
    ):
        if return_distances:
            m, i = dist.min(1)
            zc = z[start:stop].detach().to(work)
            mins[start:stop] = (m + zc.pow(2).sum(1)).clamp_min_(0.0)
        else:
            i = dist.argmin(1)
        idx[start:stop] = i
    return (idx, mins) if return_distances else idx


def nearest_code_numpy(x, codebook):
    """The same search for NumPy float64 arrays (the 2-D toy demos and Supp. 8's walkthrough, which
    stay in NumPy so that their numbers do not depend on the CPU's float kernels): index of the
    nearest code (squared L2 from the differences themselves, ties -> lowest index) of each row."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    c = np.asarray(codebook, dtype=float)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"need x (N, D) and codebook (K, D) with the same D; got {x.shape}, {c.shape}")
    return ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1).argmin(1)
