"""VQGAN-FC (factorised codes, Yu et al. 2021 "ViT-VQGAN"; the paper's Fig. 3 baseline [3]).

z (D) is projected by a linear (1x1) map to a low ``lookup_dim``; projected latents and codes are
l2-normalised and the nearest code is found there (cosine similarity); the chosen normalised code
is projected back up to D by a second linear map. Loss in the lookup space,
``mse(c^_q, sg(z^)) + beta * mse(z^, sg(c^_q))`` (beta = 0.25), plain STE in the lookup space.
``q.codebook`` is the effective (K, D) table ``proj_out(normalise(codes))`` and the output equals
its row exactly (value), so ``lookup`` round-trips. ``l2_normalize=False`` gives factorised codes
without normalisation. Code init N(0, 1) (scale-free after normalisation).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import BaseQuantizer, QuantizerOptions, vq_loss
from .registry import register_quantizer
from .ste import straight_through


@dataclass(frozen=True)
class FCOptions(QuantizerOptions):
    lookup_dim: int = 8                # dimension of the factorised lookup space
    beta: float = 0.25
    l2_normalize: bool = True

    def validate(self) -> None:
        super().validate()
        if isinstance(self.lookup_dim, bool) or not isinstance(self.lookup_dim, int) or self.lookup_dim < 1:
            raise ValueError(f"lookup_dim must be an int >= 1, got {self.lookup_dim!r}")
        self._nonnegative("beta")
        self._set(l2_normalize=bool(self.l2_normalize))


@register_quantizer("fc")
class FC(BaseQuantizer):
    display_name = "VQGAN-FC"     # the label the book prints

    Options = FCOptions

    def __init__(self, num_codes: int, code_dim: int, **options):
        super().__init__(num_codes, code_dim, **options)
        o = self.options
        self.lookup_dim, self.beta, self.l2_normalize = o.lookup_dim, o.beta, o.l2_normalize
        lookup_dim = o.lookup_dim
        self.proj_in = nn.Linear(self.code_dim, lookup_dim)
        self.proj_out = nn.Linear(lookup_dim, self.code_dim)
        self.codes = nn.Parameter(torch.randn(self.num_codes, lookup_dim))

    def _norm(self, x):
        return F.normalize(x, dim=-1) if self.l2_normalize else x

    @property
    def lookup_codebook(self) -> torch.Tensor:
        """(K, lookup_dim) codes in the search space."""
        return self._norm(self.codes)

    @property
    def codebook(self) -> torch.Tensor:
        return self.proj_out(self.lookup_codebook)

    @torch.no_grad()
    def _replace_codes(self, dead, latents):
        """Lookup happens in the projected space, so the dead code is set to the latent's projection:
        its effective code is then exactly proj_out(normalise(proj_in(z)))."""
        self.codes[dead] = self._norm(self.proj_in(latents.float())).to(self.codes.dtype)

    @torch.no_grad()
    def assign(self, z_flat):
        """The nearest code in the lookup space (cosine), as ``_quantize`` selects it; the effective
        codes' nearest in D-space is another code for most latents."""
        return self.search(self._norm(self.proj_in(z_flat.float())), self.lookup_codebook.detach())

    def _quantize(self, z_flat):
        zn = self._norm(self.proj_in(z_flat))
        cn = self.lookup_codebook
        idx = self.search(zn, cn)
        c = F.embedding(idx, cn)
        loss, stats = vq_loss(zn, c, self.beta)
        y = self.proj_out(straight_through(zn, c))
        effective = F.embedding(idx, self.proj_out(cn)).detach()
        zq = effective + (y - y.detach())  # value: the table row exactly; gradients: those of y
        return zq, idx, loss, stats
