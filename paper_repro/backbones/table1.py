"""Paper Table 1: the CelebA-HQ VQ-VAE encoder/decoder (latent grid = image / 4).

Encoder: Conv4x4 s2 (C->128), LReLU; Conv4x4 s2 (128->256), LReLU; Conv3x3 (256->256), LReLU;
6 x ResidualLayer(256); LReLU; Conv1x1 (256->D), LReLU.
Decoder: Conv3x3 (D->256), LReLU; 6 x ResidualLayer(256); LReLU; ConvT4x4 s2 (256->128), LReLU;
ConvT4x4 s2 (128->C), Tanh.
ResidualLayer: ``x + Conv1x1(ReLU(Conv3x3(x)))`` with no biases (the authors' code; Table 1 only
names the layer). The table prints ``Conv2d(256->64)`` / ``Conv2d(64->256)`` because D = 64 there.

``width`` multiplies the channel counts 128 and 256 (rounded, at least 8) for CPU-sized profiles;
``width=1.0`` is the paper's network. LeakyReLU slope is PyTorch's default 0.01 (Table 1 and the
authors' code give no slope).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualLayer", "Table1Encoder", "Table1Decoder", "scaled_channels"]


def scaled_channels(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 8: the channel count of a width-scaled profile."""
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    return max(8, int(round(channels * width)))


class ResidualLayer(nn.Module):
    """``x + Conv1x1(ReLU(Conv3x3(x)))`` without biases (Table 1 residual layer)."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = channels if hidden is None else hidden
        self.conv3 = nn.Conv2d(channels, hidden, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv3(x)))


def _check_args(in_channels: int, code_dim: int, n_res: int) -> None:
    for name, v in (("in_channels", in_channels), ("code_dim", code_dim)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not isinstance(n_res, int) or n_res < 0:
        raise ValueError(f"n_res must be a non-negative int, got {n_res!r}")


class Table1Encoder(nn.Module):
    """Table 1 encoder: (B, C, H, W) -> (B, D, H/4, W/4). H and W must be multiples of 4."""

    downsample = 4

    def __init__(self, in_channels: int = 3, code_dim: int = 64, hidden: int = 256, n_res: int = 6,
                 width: float = 1.0):
        super().__init__()
        _check_args(in_channels, code_dim, n_res)
        c1, c2 = scaled_channels(hidden // 2, width), scaled_channels(hidden, width)
        self.in_channels, self.code_dim, self.channels = in_channels, code_dim, (c1, c2)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c1, 4, stride=2, padding=1), nn.LeakyReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.LeakyReLU(),
            nn.Conv2d(c2, c2, 3, padding=1), nn.LeakyReLU(),
            *[ResidualLayer(c2) for _ in range(n_res)],
            nn.LeakyReLU(),
            nn.Conv2d(c2, code_dim, 1), nn.LeakyReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"H and W must be multiples of 4 for Table 1, got {tuple(x.shape[-2:])}")
        return self.net(x)


class Table1Decoder(nn.Module):
    """Table 1 decoder: (B, D, h, w) -> (B, C, 4h, 4w), ending in Tanh (values in (-1, 1))."""

    upsample = 4

    def __init__(self, out_channels: int = 3, code_dim: int = 64, hidden: int = 256, n_res: int = 6,
                 width: float = 1.0):
        super().__init__()
        _check_args(out_channels, code_dim, n_res)
        c1, c2 = scaled_channels(hidden // 2, width), scaled_channels(hidden, width)
        self.out_channels, self.code_dim, self.channels = out_channels, code_dim, (c1, c2)
        self.net = nn.Sequential(
            nn.Conv2d(code_dim, c2, 3, padding=1), nn.LeakyReLU(),
            *[ResidualLayer(c2) for _ in range(n_res)],
            nn.LeakyReLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.LeakyReLU(),
            nn.ConvTranspose2d(c1, out_channels, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 4 or z.shape[1] != self.code_dim:
            raise ValueError(f"expected latent (B, {self.code_dim}, h, w), got {tuple(z.shape)}")
        return self.net(z)
