"""Encoder/decoder backbones: paper Table 1 (CelebA-HQ, latent = image/4) and Table 5 (Taming-style,
attention-free; see ``taming.py`` for the resolution fix), plus the ``VQAutoencoder`` wrapper."""
from __future__ import annotations

from torch import nn

from .autoencoder import INPUT_MAPPINGS, VQAutoencoder
from .table1 import ResidualLayer, Table1Decoder, Table1Encoder, scaled_channels
from .taming import ResidualBlock, TamingDecoder, TamingEncoder

BACKBONES = ("table1", "taming")

__all__ = [
    "BACKBONES", "build_backbone", "build_autoencoder", "VQAutoencoder", "INPUT_MAPPINGS",
    "Table1Encoder", "Table1Decoder", "ResidualLayer", "TamingEncoder", "TamingDecoder",
    "ResidualBlock", "scaled_channels",
]


def build_backbone(name: str, code_dim: int, width: float = 1.0, in_channels: int = 3,
                   **options) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` for ``name`` in ``BACKBONES``.

    ``options`` go to both constructors: Table 1 accepts ``hidden``, ``n_res``; Taming accepts
    ``z_channels``, ``n_res``, ``factor`` (4 or 8). Encoder has attribute ``downsample``.
    """
    if name == "table1":
        enc_cls, dec_cls = Table1Encoder, Table1Decoder
    elif name == "taming":
        enc_cls, dec_cls = TamingEncoder, TamingDecoder
    else:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
    try:
        enc = enc_cls(in_channels, code_dim=code_dim, width=width, **options)
        dec = dec_cls(in_channels, code_dim=code_dim, width=width, **options)
    except TypeError as e:
        raise ValueError(f"bad options for backbone {name!r}: {e}") from None
    return enc, dec


def build_autoencoder(backbone: str, quantizer: nn.Module, width: float = 1.0, in_channels: int = 3,
                      input_mapping: str = "symmetric", **options) -> VQAutoencoder:
    """Convenience: ``VQAutoencoder(*build_backbone(...), quantizer)`` with ``code_dim = quantizer.code_dim``."""
    code_dim = getattr(quantizer, "code_dim", None)
    if code_dim is None:
        raise ValueError("quantizer must expose .code_dim to build an autoencoder around it")
    enc, dec = build_backbone(backbone, code_dim, width=width, in_channels=in_channels, **options)
    return VQAutoencoder(enc, quantizer, dec, input_mapping=input_mapping)
