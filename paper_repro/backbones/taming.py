"""Paper Table 5 (Supp. 12): the attention-free, three-stage Taming-style encoder/decoder (ImageNet).

Table 5, as printed, is inconsistent: the encoder has **three** stride-2 convolutions (image / 8)
but the decoder only **two** stride-2 transposed convolutions (x 4), so a literal build returns an
image half the input size. The authors' ImageNet config is ``vq-f4`` (LDM, ch_mult [1, 2, 4]: two
downsamplings, z_channels 3). We therefore offer ``factor``:

- ``factor=4`` (default; matches the decoder of Table 5 and the authors' f4 config): the first
  encoder convolution is a 3x3 stride-1 ``conv_in`` (3 -> 128) instead of 4x4 stride 2; the other two
  stride-2 convolutions stay. Encoder and decoder are then exact mirrors. Latent grid = image / 4.
- ``factor=8`` (matches the encoder of Table 5 literally): the encoder is as printed and the decoder
  gets a third ConvTranspose4x4 s2 (128 -> 128) + LeakyReLU before its last convolution.
  Latent grid = image / 8.

``ResidualBlock`` is not specified by the paper; we use the Taming/LDM ResNet block without dropout:
``x + Conv3x3(SiLU(GN(Conv3x3(SiLU(GN(x))))))``, GroupNorm with gcd(32, C) groups, eps 1e-6.
Encoder ends with Conv3x3 (512 -> z_channels=3) then ``quant_conv`` 1x1 (z_channels -> embed_dim);
decoder starts with ``post_quant_conv`` 1x1 (embed_dim -> z_channels) then Conv3x3 (z_channels -> 512).
``width`` multiplies 128/256/512 (at least 8). LeakyReLU slope 0.01.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .table1 import scaled_channels

__all__ = ["ResidualBlock", "TamingEncoder", "TamingDecoder"]

_STAGES = (128, 256, 512)


def _groups(c: int) -> int:
    return math.gcd(32, c)


class ResidualBlock(nn.Module):
    """Taming/LDM ResNet block (no dropout, same channels in and out)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(channels), channels, eps=1e-6)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(channels), channels, eps=1e-6)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        return x + self.conv2(nn.functional.silu(self.norm2(h)))


def _check_factor(factor: int) -> None:
    if factor not in (4, 8):
        raise ValueError(f"factor must be 4 (authors' f4 config, default) or 8 (Table 5 encoder), got {factor!r}")


class TamingEncoder(nn.Module):
    """(B, C, H, W) -> (B, embed_dim, H/factor, W/factor)."""

    def __init__(self, in_channels: int = 3, code_dim: int = 3, z_channels: int = 3, n_res: int = 2,
                 width: float = 1.0, factor: int = 4):
        super().__init__()
        _check_factor(factor)
        c1, c2, c3 = (scaled_channels(c, width) for c in _STAGES)
        self.in_channels, self.code_dim, self.downsample = in_channels, code_dim, factor
        first = (nn.Conv2d(in_channels, c1, 3, padding=1) if factor == 4
                 else nn.Conv2d(in_channels, c1, 4, stride=2, padding=1))
        self.net = nn.Sequential(
            first, nn.LeakyReLU(),
            *[ResidualBlock(c1) for _ in range(n_res)],
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.LeakyReLU(),
            *[ResidualBlock(c2) for _ in range(n_res)],
            nn.Conv2d(c2, c3, 4, stride=2, padding=1), nn.LeakyReLU(),
            *[ResidualBlock(c3) for _ in range(n_res)],
            nn.Conv2d(c3, z_channels, 3, padding=1),
        )
        self.quant_conv = nn.Conv2d(z_channels, code_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % self.downsample or x.shape[-2] % self.downsample:
            raise ValueError(f"H and W must be multiples of {self.downsample}, got {tuple(x.shape[-2:])}")
        return self.quant_conv(self.net(x))


class TamingDecoder(nn.Module):
    """(B, embed_dim, h, w) -> (B, C, factor*h, factor*w), ending in Tanh."""

    def __init__(self, out_channels: int = 3, code_dim: int = 3, z_channels: int = 3, n_res: int = 2,
                 width: float = 1.0, factor: int = 4):
        super().__init__()
        _check_factor(factor)
        c1, c2, c3 = (scaled_channels(c, width) for c in _STAGES)
        self.out_channels, self.code_dim, self.upsample = out_channels, code_dim, factor
        self.post_quant_conv = nn.Conv2d(code_dim, z_channels, 1)
        extra = ([nn.ConvTranspose2d(c1, c1, 4, stride=2, padding=1), nn.LeakyReLU()] if factor == 8 else [])
        self.net = nn.Sequential(
            nn.Conv2d(z_channels, c3, 3, padding=1), nn.LeakyReLU(),
            *[ResidualBlock(c3) for _ in range(n_res)],
            nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), nn.LeakyReLU(),
            *[ResidualBlock(c2) for _ in range(n_res)],
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.LeakyReLU(),
            *[ResidualBlock(c1) for _ in range(n_res)],
            *extra,
            nn.Conv2d(c1, out_channels, 3, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 4 or z.shape[1] != self.code_dim:
            raise ValueError(f"expected latent (B, {self.code_dim}, h, w), got {tuple(z.shape)}")
        return self.net(self.post_quant_conv(z))
