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


@torch.no_grad()
def lloyd_torch(x: torch.Tensor, k: int, iters: int = 50, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means (Eq. A3 fixed point) from ``k`` distinct random rows; stops when assignments settle."""
    if x.shape[0] < k:
        raise ValueError(f"need at least k={k} vectors for k-means, got {x.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    c = x[torch.randperm(x.shape[0], generator=g)[:k]].clone()
    prev = None
    xx = (x * x).sum(1, keepdim=True)
    for _ in range(iters):
        idx = torch.addmm(xx + (c * c).sum(1)[None], x, c.T, alpha=-2.0).argmin(1)
        if prev is not None and torch.equal(idx, prev):
            break
        prev = idx
        cnt = torch.bincount(idx, minlength=k).to(x.dtype)
        s = torch.zeros_like(c).index_add_(0, idx, x)
        full = cnt > 0
        c[full] = s[full] / cnt[full, None]
    return c
