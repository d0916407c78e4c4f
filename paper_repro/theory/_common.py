"""Helpers shared by the theory walkthroughs: real images, a seeded small Table-1 encoder, k-means."""
from __future__ import annotations

import torch


_IMAGES: dict = {}


def load_images(n: int, image_size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` Fashion-MNIST training images as float (n, 3, S, S) in [-1, 1] (the symmetric mapping).

    Uses ``paper_repro.data.load_tensor_dataset`` (same seeded subset rule as the rest of the repo).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    from paper_repro.data import load_tensor_dataset

    key = (n, image_size, seed)
    if key not in _IMAGES:   # cached: callers must not modify the returned tensor in place
        x = load_tensor_dataset("fashion_mnist", "train", image_size=image_size, limit=n, seed=seed,
                                dtype=torch.float32)
        _IMAGES.clear()
        _IMAGES[key] = x * 2.0 - 1.0
    return _IMAGES[key]


def make_encoder(code_dim: int, width: float, seed: int, n_res: int = 6, decoder: bool = False):
    """Seeded ``Table1Encoder`` (and ``Table1Decoder`` if ``decoder``) from ``paper_repro.backbones``."""
    from paper_repro.backbones import Table1Decoder, Table1Encoder

    torch.manual_seed(seed)
    enc = Table1Encoder(3, code_dim=code_dim, width=width, n_res=n_res)
    if not decoder:
        return enc
    dec = Table1Decoder(3, code_dim=code_dim, width=width, n_res=n_res)
    return enc, dec


def flat_latents(z: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D), rows ordered image by image."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def assign(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Nearest code of every row: the package's search (``quantizers.search.nearest_code``) in
    float64, whatever the inputs' dtype, so that an assignment does not flip with the CPU's float32
    kernels or thread count (these pages' verdicts must not depend on the machine)."""
    from ..quantizers.search import nearest_code
    return nearest_code(z.double(), codebook.double(), precision="fp64")


def lloyd_torch(x: torch.Tensor, k: int, iters: int = 50, seed: int = 0) -> torch.Tensor:
    """The package's k-means (``quantizers.vq.kmeans``, in float64) from ``k`` distinct random rows
    drawn with ``seed``; it stops when the assignments settle."""
    if x.shape[0] < k:
        raise ValueError(f"need at least k={k} vectors for k-means, got {x.shape[0]}")
    from ..quantizers.vq import kmeans
    # in float64 (returned in x's dtype): the solution must not depend on float32 kernels / threads
    return kmeans(x.double(), k, iters, generator=torch.Generator().manual_seed(seed)).to(x.dtype)
