"""Evaluation metrics: codebook usage / perplexity, PSNR, SSIM, LPIPS, rFID and the labelled
FD-VGG16 proxy, plus a streaming :class:`ReconstructionMeter` for evaluation over a loader.

Every reconstruction Frechet distance travels with its name (``reconstruction_fd`` returns
``(value, name)``; the meter reports ``fd_metric``): "rFID" only for Inception-v3, else "FD-VGG16".
"""
from __future__ import annotations

from .fid import (
    FeatureStats, InceptionWeightsUnavailable, fd_from_stats, fd_vgg16, fd_vgg16_name, fid,
    frechet_distance, inception_weights_path, reconstruction_fd, vgg16_stats,
)
from .image import gaussian_window, psnr, ssim
from .perceptual import VGG16Features, lpips, lpips_model, vgg16_features_model
from .usage import (
    counts_from_indices, dead_codes, perplexity_from_counts, usage_from_counts, usage_from_indices,
)
from .weights import WeightsUnavailableError, backbone_state, lpips_linear_state
from .meter import ReconstructionMeter

__all__ = [
    "psnr", "ssim", "gaussian_window", "lpips", "lpips_model", "VGG16Features", "vgg16_features_model",
    "frechet_distance", "FeatureStats", "fd_from_stats", "fd_vgg16", "fd_vgg16_name", "vgg16_stats", "fid",
    "reconstruction_fd", "inception_weights_path", "InceptionWeightsUnavailable", "WeightsUnavailableError",
    "counts_from_indices", "usage_from_counts", "perplexity_from_counts", "dead_codes", "usage_from_indices",
    "backbone_state", "lpips_linear_state", "ReconstructionMeter",
]
