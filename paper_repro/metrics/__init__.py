"""Evaluation metrics: codebook usage / perplexity, PSNR, SSIM, LPIPS, rFID and the labelled
FD-VGG16 proxy, plus a streaming :class:`ReconstructionMeter` for evaluation over a loader.

Every reconstruction Frechet distance travels with its name (``reconstruction_fd`` returns
``(value, name)``; the meter reports ``fd_name``): "rFID" only for Inception-v3, else "FD-VGG16".
"""
from __future__ import annotations

import torch

from .fid import (
    FeatureStats, InceptionWeightsUnavailable, fd_from_stats, fd_vgg16, fd_vgg16_name, fid,
    frechet_distance, inception_weights_path, reconstruction_fd, vgg16_stats,
)
from .image import gaussian_window, psnr, ssim
from .perceptual import VGG16Features, lpips, lpips_model, vgg16_features_model
from ..quantizers.stats import usage_summary
from .usage import (
    counts_from_indices, dead_codes, perplexity_from_counts, usage_from_counts, usage_from_indices,
)
from .weights import WeightsUnavailableError, backbone_state, lpips_linear_state

__all__ = [
    "psnr", "ssim", "gaussian_window", "lpips", "lpips_model", "VGG16Features", "vgg16_features_model",
    "frechet_distance", "FeatureStats", "fd_from_stats", "fd_vgg16", "fd_vgg16_name", "vgg16_stats", "fid",
    "reconstruction_fd", "inception_weights_path", "InceptionWeightsUnavailable", "WeightsUnavailableError",
    "counts_from_indices", "usage_from_counts", "perplexity_from_counts", "dead_codes", "usage_from_indices",
    "backbone_state", "lpips_linear_state", "ReconstructionMeter",
]


class ReconstructionMeter:
    """Streaming evaluation: ``update(real, recon, indices=None)`` per batch, then ``compute()``.

    Keeps only running sums: per-image PSNR / SSIM / LPIPS means, FD feature statistics of real and
    reconstructed images (``fd="vgg16"`` -> FD-VGG16, ``fd="inception"`` -> rFID via torchmetrics,
    ``fd=None`` -> skipped), and code counts when ``num_codes`` is given. Images in [0, 1];
    reconstructions are clamped to [0, 1] before the metrics (recorded as ``clamped: True``).
    """

    def __init__(self, lpips_net: str | None = "alex", fd: str | None = "vgg16", num_codes: int | None = None,
                 resize: int | None = 224, inception_weights=None, weights_dir=None):
        if fd not in ("vgg16", "inception", None):
            raise ValueError(f"fd must be 'vgg16', 'inception' or None, got {fd!r}")
        self.lpips_net, self.fd, self.num_codes = lpips_net, fd, num_codes
        self.resize, self.weights_dir = resize, weights_dir
        self.n = 0
        self.sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0}
        self.counts = torch.zeros(num_codes, dtype=torch.long) if num_codes else None
        self._real, self._fake, self._fid = FeatureStats(512), FeatureStats(512), None
        if fd == "inception":
            path = inception_weights_path(inception_weights)
            if path is None:
                raise InceptionWeightsUnavailable(
                    "fd='inception' needs local Inception weights ($PAPER_REPRO_INCEPTION_WEIGHTS); use fd='vgg16'")
            from torchmetrics.image.fid import FrechetInceptionDistance

            torch.load(path, map_location="cpu", weights_only=True)
            self._fid = FrechetInceptionDistance(feature=2048, normalize=True,
                                                 feature_extractor_weights_path=str(path))

    @torch.no_grad()
    def update(self, real: torch.Tensor, recon: torch.Tensor, indices: torch.Tensor | None = None) -> None:
        real = real.float()
        recon = recon.detach().float().clamp(0, 1)
        self.n += real.shape[0]
        self.sums["psnr"] += float(psnr(real, recon).double().sum())
        self.sums["ssim"] += float(ssim(real, recon).double().sum())
        if self.lpips_net:
            self.sums["lpips"] += float(lpips(real, recon, self.lpips_net, weights_dir=self.weights_dir).double().sum())
        if self.fd == "vgg16":
            model = vgg16_features_model(self.resize, real.device, self.weights_dir)
            self._real.update(model(real))
            self._fake.update(model(recon))
        elif self.fd == "inception":
            self._fid = self._fid.to(real.device)
            self._fid.update(real, real=True)
            self._fid.update(recon, real=False)
        if self.counts is not None and indices is not None:
            self.counts += counts_from_indices(indices.cpu(), self.num_codes)

    def compute(self) -> dict:
        if self.n == 0:
            raise ValueError("ReconstructionMeter.compute() before any update()")
        out = {"n_images": self.n, "psnr": self.sums["psnr"] / self.n, "ssim": self.sums["ssim"] / self.n,
               "clamped": True}
        if self.lpips_net:
            out[f"lpips_{self.lpips_net}"] = self.sums["lpips"] / self.n
        if self.fd == "vgg16":
            out["fd"], out["fd_name"] = fd_from_stats(self._real, self._fake), fd_vgg16_name(self.resize)
        elif self.fd == "inception":
            out["fd"], out["fd_name"] = float(self._fid.compute()), "rFID"
        if self.counts is not None:
            u = usage_summary(self.counts)
            out.update(usage=u["usage"], perplexity=u["perplexity"], dead_codes=u["dead_codes"])
        return out
