"""The one evaluation path: a streaming meter over (real, reconstruction, code indices) batches.

``update`` per batch, then ``compute``; only running sums are kept. Images in [0, 1];
reconstructions are clamped to [0, 1] first. The keys are the ones a run's record stores:

- ``eval_images``, ``eval_mse`` (per-image mean squared error, averaged over images);
- ``eval_usage``, ``eval_perplexity``, ``eval_dead_codes`` (``quantizers.stats.usage_summary`` of the
  code counts over all batches) with ``"usage"``;
- ``psnr``, ``ssim``, ``lpips`` (AlexNet LPIPS) per-image means, each when selected;
- ``fd`` and ``fd_metric`` with ``"fd"``: the real rFID (Inception-v3, torchmetrics) when local
  weights exist, else the labelled proxy on VGG16 features (``FD-VGG16``, or ``FD-VGG16@native``
  with ``fd_resize=None``), streamed as feature statistics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..quantizers.stats import usage_summary
from .fid import FeatureStats, fd_from_stats, fd_vgg16_name, fid, inception_weights_path
from .image import psnr, ssim
from .perceptual import lpips, vgg16_features_model

METRICS = ("usage", "psnr", "ssim", "lpips", "fd")


class ReconstructionMeter:
    def __init__(self, metrics=METRICS, num_codes: int | None = None, fd_resize: int | None = 224,
                 device=None, lpips_net: str = "alex", weights_dir=None, inception_weights=None):
        bad = sorted(set(metrics) - set(METRICS))
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; expected a subset of {METRICS}")
        if "usage" in metrics and not num_codes:
            raise ValueError("the usage metrics need num_codes (K)")
        self.metrics, self.num_codes, self.fd_resize = set(metrics), num_codes, fd_resize
        self.lpips_net, self.weights_dir = lpips_net, weights_dir
        self.device = torch.device(device) if device is not None else None
        self.n = 0
        self.sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "mse": 0.0}
        self.counts = None
        self.fd_kind = None
        if "fd" in self.metrics:
            self.inception = inception_weights_path(inception_weights)
            self.fd_kind = "inception" if self.inception is not None else "vgg16"
            self._real, self._fake = (FeatureStats(512), FeatureStats(512)) if self.fd_kind == "vgg16" else ([], [])

    @torch.no_grad()
    def update(self, real: torch.Tensor, recon: torch.Tensor, indices: torch.Tensor | None = None) -> None:
        x = real.float()
        r = recon.detach().float().clamp(0, 1)
        m = self.metrics
        self.sums["mse"] += F.mse_loss(r, x, reduction="none").flatten(1).mean(1).double().sum().item()
        if "psnr" in m:
            self.sums["psnr"] += psnr(r, x).double().sum().item()
        if "ssim" in m:
            self.sums["ssim"] += ssim(r, x).double().sum().item()
        if "lpips" in m:
            self.sums["lpips"] += lpips(r, x, net=self.lpips_net).double().sum().item()
        if self.fd_kind == "vgg16":
            vgg = vgg16_features_model(self.fd_resize, x.device, self.weights_dir)
            self._real.update(vgg(x))
            self._fake.update(vgg(r))
        elif self.fd_kind == "inception":
            self._real.append((x * 255).round().to(torch.uint8).cpu())
            self._fake.append((r * 255).round().to(torch.uint8).cpu())
        if "usage" in m and indices is not None:
            hits = torch.bincount(indices.reshape(-1), minlength=self.num_codes)
            self.counts = hits if self.counts is None else self.counts + hits
        self.n += x.shape[0]

    def compute(self) -> dict:
        if self.n == 0:
            raise ValueError("ReconstructionMeter.compute() before any update()")
        n, m = self.n, self.metrics
        out: dict = {"eval_images": n, "eval_mse": self.sums["mse"] / n}
        if "usage" in m:
            counts = self.counts if self.counts is not None else torch.zeros(self.num_codes, dtype=torch.long)
            u = usage_summary(counts)
            out.update(eval_usage=u["usage"], eval_perplexity=u["perplexity"], eval_dead_codes=u["dead_codes"])
        for k in ("psnr", "ssim", "lpips"):
            if k in m:
                out[k] = self.sums[k] / n
        if self.fd_kind == "vgg16":
            out["fd"], out["fd_metric"] = float(fd_from_stats(self._real, self._fake)), fd_vgg16_name(self.fd_resize)
        elif self.fd_kind == "inception":
            # uint8 sets, converted batch by batch; Inception runs on the meter's device (the GPU where
            # there is one), not on the device the stored images sit on
            out["fd"] = float(fid(torch.cat(self._real), torch.cat(self._fake), weights_path=self.inception,
                                  allow_download=False, device=self.device))
            out["fd_metric"] = "rFID"
        return out
