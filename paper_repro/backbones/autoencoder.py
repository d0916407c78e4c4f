"""``VQAutoencoder``: encoder -> quantizer -> decoder (paper Sec. 3, Fig. 1; Eq. 1 notation
``x_hat = D(q(E(x)))``).

Input mapping. Images enter in [0, 1]; the decoders end in Tanh (values in (-1, 1)). The paper is
silent on how the two meet. Two named options:

- ``input_mapping="symmetric"`` (default): the encoder sees ``2x - 1`` (in [-1, 1]) and the
  reconstruction returned is ``(tanh_out + 1) / 2`` (in (0, 1)), so reconstruction and input live
  on the same scale and a loss/metric compares like with like.
- ``input_mapping="official"``: what the authors' CelebA code does: ``x`` in [0, 1] goes straight
  into the encoder and the raw Tanh output is the reconstruction (so it can also be negative; the
  MSE is taken against the [0, 1] input).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["VQAutoencoder", "INPUT_MAPPINGS"]

INPUT_MAPPINGS = ("symmetric", "official")


class VQAutoencoder(nn.Module):
    """``forward(x) -> dict(recon, quantizer_output, z)`` for images ``x`` (B, C, H, W) in [0, 1].

    ``quantizer`` follows the ``paper_repro.quantizers`` interface: ``out = q(z)`` with
    ``out.quantized`` (B, D, h, w), ``out.indices`` (B, h, w), ``out.loss``, ``out.stats``.
    """

    def __init__(self, encoder: nn.Module, quantizer: nn.Module, decoder: nn.Module,
                 input_mapping: str = "symmetric"):
        super().__init__()
        if input_mapping not in INPUT_MAPPINGS:
            raise ValueError(f"unknown input_mapping {input_mapping!r}; expected one of {INPUT_MAPPINGS}")
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.input_mapping = input_mapping

    def _check(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x) or x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got {getattr(x, 'shape', type(x))}")
        if not x.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {x.dtype}")
        if not torch.isfinite(x).all():
            raise ValueError("input images contain NaN or Inf")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous latents ``E(x)`` (B, D, h, w)."""
        self._check(x)
        return self.encoder(2 * x - 1 if self.input_mapping == "symmetric" else x)

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        """Reconstruction from quantised latents, on the scale of the input (see module docstring)."""
        out = self.decoder(zq)
        return (out + 1) / 2 if self.input_mapping == "symmetric" else out

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Reconstruction from code indices (B, h, w) via ``quantizer.lookup`` (-> (B, D, h, w))."""
        return self.decode(self.quantizer.lookup(indices))

    def forward(self, x: torch.Tensor) -> dict:
        z = self.encode(x)
        q = self.quantizer(z)
        return {"recon": self.decode(q.quantized), "quantizer_output": q, "z": z}
