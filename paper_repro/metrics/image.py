"""PSNR and SSIM per image, in torch (batched, any device).

PSNR = 10 log10(R^2 / MSE) with MSE over all C*H*W values of an image (inf for identical images).
SSIM (Wang et al. 2004) exactly as ``skimage.metrics.structural_similarity(a, b,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=0)``:
separable Gaussian window sigma 1.5 truncated at 3.5 sigma (11 taps), K1 = 0.01, K2 = 0.03, local
statistics over valid window positions only (skimage filters the whole image, then crops the
5-pixel border affected by padding: identical), mean over positions, then over channels.
The authors' code used torchmetrics with ``data_range=None`` and unclamped reconstructions; we
take ``data_range=1`` and do not clamp (pass clamped images if wanted).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from .perceptual import check_pair


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, shape (N,); an identical pair scores 100 dB (the MSE is floored at 1e-10,
    so a perfect reconstruction does not make the mean infinite)."""
    check_pair(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1).clamp_min(1e-10 * data_range ** 2)
    return (10 * torch.log10(data_range ** 2 / mse)).float()


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5, dtype=torch.float64, device=None) -> torch.Tensor:
    """1-D normalised Gaussian taps, radius ``int(truncate * sigma + 0.5)`` (scipy's rule)."""
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Per-image SSIM (N,) with a Gaussian window (see module docstring); computed in float64."""
    check_pair(a, b)
    w = gaussian_window(sigma, device=a.device)
    k = w.numel()
    if min(a.shape[-2:]) < k:
        raise ValueError(f"images must be at least {k}x{k} for SSIM with sigma={sigma}, got {tuple(a.shape[-2:])}")
    n, c, h, wd = a.shape
    x = a.double().reshape(n * c, 1, h, wd)
    y = b.double().reshape(n * c, 1, h, wd)
    wh, wv = w.view(1, 1, 1, k), w.view(1, 1, k, 1)

    def filt(t):
        return F.conv2d(F.conv2d(t, wh), wv)

    mx, my = filt(x), filt(y)
    vx = filt(x * x) - mx * mx
    vy = filt(y * y) - my * my
    cxy = filt(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(n, c, -1).mean(dim=(1, 2)).float()


__all__ = ["psnr", "ssim", "gaussian_window"]
