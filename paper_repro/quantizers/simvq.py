"""SimVQ (Zhu et al. 2024, the paper's baseline [13]): frozen random codebook times a learned linear map.

Codebook ``C' = W C + b``: C is a frozen buffer drawn N(0, std = D**-0.5); W, b a learned
``Linear(D, D)`` **with bias** (the official SimVQ). Loss (official weighting)
``mse(C'_q, sg(z)) + beta * mse(z, sg(C'_q))`` with beta = 0.25; plain STE. Every code moves with
every update of W, b (Sec. 3.4.3 argues that the linear constraint C' = WC can keep the codebook
off the k-means solution).

Departure from the official SimVQ code: there the forward output is ``z + sg(C'_q - z)`` computed
in floating point, which differs from the looked-up code by rounding; here the output equals
``lookup(indices)`` exactly in eval mode (and in value in training).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import BaseQuantizer, QuantizerOptions
from .registry import register_quantizer


@dataclass(frozen=True)
class SimVQOptions(QuantizerOptions):
    beta: float = 0.25
    bias: bool = True                  # False: the map C' = W C of the paper's Sec. 3.4.3 argument

    def validate(self) -> None:
        super().validate()
        self._nonnegative("beta")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be True or False, got {self.bias!r}")


@register_quantizer("simvq")
class SimVQ(BaseQuantizer):
    display_name = "SimVQ"     # the label the book prints

    Options = SimVQOptions

    def __init__(self, num_codes: int, code_dim: int, **options):
        super().__init__(num_codes, code_dim, **options)
        self.beta, bias = self.options.beta, self.options.bias
        self.register_buffer("base", torch.randn(self.num_codes, self.code_dim) * self.code_dim ** -0.5)
        # bias=False: the map C' = W C of the paper's Sec. 3.4.3 argument (the official SimVQ has a bias)
        self.proj = nn.Linear(self.code_dim, self.code_dim, bias=bias)

    @property
    def codebook(self) -> torch.Tensor:
        return self.proj(self.base)

    @torch.no_grad()
    def _replace_codes(self, dead, latents):
        """Choose new base rows so that the *mapped* code lands on the latent: base_k = W^+ (z - b)
        (exact when W is invertible, least squares otherwise)."""
        w = self.proj.weight.double()
        b = self.proj.bias.double() if self.proj.bias is not None else 0.0
        new = (latents.double() - b) @ torch.linalg.pinv(w).t()
        self.base[dead] = new.to(self.base.dtype)

    def _quantize(self, z_flat):
        return self._quantize_plain(z_flat, self.codebook, self.beta)
