"""Vector quantizers of the paper and its baselines, behind one interface.

>>> from paper_repro.quantizers import build_quantizer
>>> q = build_quantizer("nsvq", num_codes=512, code_dim=64)
>>> out = q(z)                 # z: (B, D, H, W)
>>> out.quantized, out.indices, out.loss, out.stats

Methods: ``vq`` (van den Oord), ``ema`` (VQ-VAE-2 EMA codebook), ``fc`` (VQGAN-FC factorised
l2-normalised codes), ``simvq`` (frozen codebook x learned linear map), ``nsvq`` (the paper's
NS-VQ, Eq. 16-18), ``transvq`` (the paper's TransVQ, Sec. 3.4). Any of them takes
``replacement=dict(...)`` for dead-code replacement from a latent reservoir.
"""
from .base import BaseQuantizer, QuantizerOutput
from .registry import (available_quantizers, build_quantizer, get_quantizer_class, register_quantizer,
                       registered_quantizers)
from .search import DEFAULT_CHUNK_BYTES, distance_chunks, nearest_code
from .stats import CodeUsage
from .ste import modified_straight_through, straight_through
# each method module registers itself on import, in this order (a broken module is an error)
from . import vq, ema, fc, simvq, nsvq, transvq  # noqa: F401,E401

__all__ = [
    "BaseQuantizer", "QuantizerOutput", "CodeUsage", "available_quantizers", "build_quantizer",
    "get_quantizer_class", "register_quantizer", "registered_quantizers", "nearest_code", "distance_chunks",
    "DEFAULT_CHUNK_BYTES", "straight_through", "modified_straight_through",
]
