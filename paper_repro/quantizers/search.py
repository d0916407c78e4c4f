"""Nearest-code search: ``argmin_k ||z - c_k||^2`` without ever materialising a large N x K block.

Squared distances are expanded as ``||z||^2 - 2 z.C^T + ||C||^2`` and computed with one
``torch.addmm`` per chunk of latents; the chunk height is chosen so that one N_chunk x K block of
fp32 distances stays under ``chunk_bytes`` (default 256 MiB: K = 262,144 codes -> 256 rows/chunk).

Precision: fp32 by default. ``precision="bf16"`` / ``"fp16"`` run only the z.C^T matmul in that
dtype (accumulated to fp32 afterwards); this is an explicit option and quantizers record it in
``q.config``. The ``||z||^2`` term does not change the argmin, so :func:`nearest_code` adds it only
to the returned minimum distances.

Speed on a CPU (the results are the same indices, to the bit): :func:`nearest_code` computes its
distances in row tiles of at most ``CPU_TILE_BYTES`` (a block that stays in cache, and memory that the
allocator reuses instead of faulting in fresh pages for every N x K block), and reduces each row
with :func:`argmin_rows`, an exact two-level argmin (block minima, then the winning block) that runs
on the vectorised ``amin`` instead of torch's scalar ``argmin`` loop. Measured on a 2-core AMD EPYC,
one thread, N = 1,024 latents, K = 8,192: 49.8 ms -> 13.4 ms (D = 64), 38.4 -> 6.4 ms (D = 3).
"""
from __future__ import annotations

from typing import Iterator

import torch

DEFAULT_CHUNK_BYTES = 256 * 2**20
CPU_TILE_BYTES = 2 * 2**20      # a row tile's distance block on a CPU (fits in L2/L3 with the codebook)
TILE_ROWS_MIN = 16              # GEMMs of fewer rows take another (GEMV-like) kernel path
REDUCE_BLOCK = 64               # columns per block of argmin_rows / argmax_rows
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


def search_rows(num_codes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES, device=None) -> int:
    """Rows per distance block of :func:`nearest_code`: at most ``chunk_bytes`` of fp32 (the memory
    cap); on a CPU also at most ``CPU_TILE_BYTES`` (but at least ``TILE_ROWS_MIN`` rows, a multiple of
    it), since a cache-sized tile is several times faster there than one large block."""
    rows = rows_per_chunk(num_codes, chunk_bytes)
    if device is None or torch.device(device).type == "cpu":
        tile = CPU_TILE_BYTES // (4 * int(num_codes)) // TILE_ROWS_MIN * TILE_ROWS_MIN
        rows = min(rows, max(TILE_ROWS_MIN, tile))
    return rows


def _reduce_rows(d: torch.Tensor, largest: bool, block: int) -> torch.Tensor:
    r, k = d.shape
    if d.device.type != "cpu" or k < 4 * block or k % block or not d.is_contiguous():
        return d.argmax(1) if largest else d.argmin(1)
    v = d.view(r, k // block, block)
    # the first block holding the row's extreme value, then its first position in that block: the
    # first index overall, which is torch's rule for ties; NaN propagates through amin/amax and
    # wins argmin/argmax just as it does in the one-level reduction
    best = (v.amax(2) if largest else v.amin(2))
    bi = best.argmax(1) if largest else best.argmin(1)
    inner = v[torch.arange(r, device=d.device), bi]
    return bi * block + (inner.argmax(1) if largest else inner.argmin(1))


def argmin_rows(d: torch.Tensor, block: int = REDUCE_BLOCK) -> torch.Tensor:
    """``d.argmin(1)`` for a 2-D tensor, exactly (the same index, ties -> the first), computed as a
    two-level reduction on a CPU; other devices and shapes whose width is not a multiple of
    ``block`` (or under 4 blocks) use ``d.argmin(1)`` itself."""
    return _reduce_rows(d, False, block)


def argmax_rows(d: torch.Tensor, block: int = REDUCE_BLOCK) -> torch.Tensor:
    """``d.argmax(1)`` exactly, the same way as :func:`argmin_rows`."""
    return _reduce_rows(d, True, block)


WORKSPACE_MAX_BYTES = 64 * 2**20
_WORKSPACES: dict[str, torch.Tensor] = {}


def cpu_workspace(name: str, rows: int, cols: int, device) -> "torch.Tensor | None":
    """A reusable fp32 (rows, cols) buffer for the CPU, one per ``name`` (None elsewhere or above
    ``WORKSPACE_MAX_BYTES``). A fresh block of 32 MiB or more is mapped anew by the allocator on every
    call and its pages faulted in as it is written: 9 ms of a 27 ms GEMM-and-exp at 1,024 x 8,192
    (one thread). Whatever is written into it is overwritten by the next caller of the same name."""
    if torch.device(device).type != "cpu" or 4 * rows * cols > WORKSPACE_MAX_BYTES:
        return None
    buf = _WORKSPACES.get(name)
    if buf is None or buf.numel() < rows * cols:
        buf = _WORKSPACES[name] = torch.empty(rows * cols, dtype=torch.float32)
    return buf[: rows * cols].view(rows, cols)


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
    rows = search_rows(codebook.shape[0], chunk_bytes, z.device)
    for start, stop, dist in distance_chunks(
        z, codebook, chunk_bytes=4 * rows * codebook.shape[0], precision=precision, include_z_norm=False
    ):
        i = argmin_rows(dist)
        if return_distances:
            m = dist.gather(1, i.unsqueeze(1)).squeeze(1)
            zc = z[start:stop].detach().to(work)
            mins[start:stop] = (m + zc.pow(2).sum(1)).clamp_min_(0.0)
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
