"""van den Oord et al. VQ (paper Sec. 3.1): nearest code, STE, codebook + commitment loss.

Loss (the official code's mean-squared form, beta = 0.25):
``L = mse(c_q, sg(z)) + beta * mse(z, sg(c_q))`` (mean over the N*D latent elements), so the
codebook gradient is ``dL/dc_k = 2/(N D) * sum_{i: q_i = k} (c_k - z_i)``; with plain SGD this is
the online k-means step of Supp. 8 (Eq. A5), whose fixed points are cell means (Eq. A3).

Options: ``init="uniform"`` (U(-1/K, 1/K), the official code) or ``"kmeans"`` (Lloyd's algorithm
on the first training batch, or with ``kmeans_images=N`` on the untrained encoder's latents of the
first N training images, or call :meth:`VQ.init_kmeans`; Sec. 3.2 assumes a k-means start);
``modified_ste`` (Eq. 18, off here, on in NS-VQ) with ``ste_d`` ("paper": d = B*H*W, or
"official": d = B*H*W*D).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import BaseQuantizer, QuantizerOptions, vq_loss
from .registry import register_quantizer
from .search import nearest_code
from .stats import distributed_ready
from .ste import check_ste_d, modified_straight_through, resolve_ste_d, straight_through

INITS = ("uniform", "kmeans")


@dataclass(frozen=True)
class VQOptions(QuantizerOptions):
    beta: float = 0.25                 # commitment weight (Eq. 2)
    init: str = "uniform"              # "uniform" (+-1/K) or "kmeans"
    kmeans_iters: int = 10
    # init="kmeans" on what: 0, the first training batch's latents (with batch 16 at 32x32, 1,024
    # latents: for K = 1024 Lloyd's algorithm has nothing to do, the codes are those latents); N > 0,
    # the untrained encoder's latents of the first N training images (dataset order), which the
    # trainer computes before the first step (``data_init_images``)
    kmeans_images: int = 0
    modified_ste: bool = False         # Eq. 18 (on in NS-VQ)
    ste_d: str | float = "paper"       # the d of Eq. 18: "paper" (B*H*W), "official" (B*H*W*D) or a number

    def validate(self) -> None:
        super().validate()
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        self._nonnegative("beta")
        n = self.kmeans_images
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"kmeans_images must be an int >= 0, got {n!r}")
        if n and self.init != "kmeans":
            raise ValueError(f"kmeans_images={n} needs init='kmeans' (got init={self.init!r})")
        self._set(kmeans_iters=int(self.kmeans_iters), modified_ste=bool(self.modified_ste),
                  ste_d=check_ste_d(self.ste_d))


@torch.no_grad()
def kmeans(latents: torch.Tensor, num_codes: int, iters: int = 10, *, generator=None, search_fn=None) -> torch.Tensor:
    """Lloyd's k-means on ``latents`` (N, D) -> (K, D): the package's one k-means (quantizer
    initialisation, the theory pages). Starts from K distinct random latents (sampled with replacement
    when N < K); empty clusters keep their previous centre; stops early once the assignment no longer
    changes (the centres would not move again). Computes in float64 for float64 latents, else in
    float32, with :func:`~paper_repro.quantizers.search.nearest_code` unless ``search_fn`` is given."""
    n, d = latents.shape
    x = latents.detach()
    x = x if x.dtype == torch.float64 else x.float()
    if search_fn is None:
        precision = "fp64" if x.dtype == torch.float64 else "fp32"

        def search_fn(a, c):
            return nearest_code(a, c, precision=precision)
    if n >= num_codes:
        perm = torch.randperm(n, generator=generator)[:num_codes].to(x.device)
    else:
        perm = torch.randint(0, n, (num_codes,), generator=generator).to(x.device)
    centres = x[perm].clone()
    prev = None
    for _ in range(iters):
        idx = search_fn(x, centres)
        if prev is not None and torch.equal(idx, prev):
            break
        prev = idx
        counts = torch.bincount(idx, minlength=num_codes).to(x.dtype)
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


@torch.no_grad()
def kmeans_centres(q, latents: torch.Tensor, iters: int | None = None) -> torch.Tensor:
    """k-means init of quantizer ``q`` (Sec. 3.2's assumption) from ``latents`` ((N, D) or
    (B, D, H, W)) with ``q``'s own search; under DDP every process gets rank 0's solution."""
    if latents.dim() == 4:
        latents = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    if latents.dim() != 2 or latents.shape[1] != q.code_dim:
        raise ValueError(f"init_kmeans expects (N, {q.code_dim}) or (B, {q.code_dim}, H, W) latents")
    centres = kmeans(latents, q.num_codes, q.kmeans_iters if iters is None else iters,
                     search_fn=lambda x, c: q.search(x, c))
    if distributed_ready():
        torch.distributed.broadcast(centres, src=0)
    return centres


@register_quantizer("vq")
class VQ(BaseQuantizer):
    display_name = "VQ (vanilla)"     # the label the book prints

    Options = VQOptions

    def __init__(self, num_codes: int, code_dim: int, **options):
        super().__init__(num_codes, code_dim, **options)
        o = self.options
        self.beta, self.init, self.kmeans_iters = o.beta, o.init, o.kmeans_iters
        self.modified_ste, self.ste_d = o.modified_ste, o.ste_d
        init = o.init
        k = self.num_codes
        self.embedding = nn.Parameter(torch.empty(k, self.code_dim).uniform_(-1.0 / k, 1.0 / k))
        self.register_buffer("initialized", torch.tensor(init != "kmeans"))

    @property
    def codebook(self) -> torch.Tensor:
        return self.embedding

    def data_init_images(self) -> int:
        """Training images whose latents the trainer should pass to :meth:`init_kmeans` before the
        first step (``kmeans_images``; 0 once initialised, or when the first batch does it)."""
        return self.options.kmeans_images if self.init == "kmeans" and not bool(self.initialized) else 0

    @torch.no_grad()
    def init_kmeans(self, latents: torch.Tensor, iters: int | None = None) -> None:
        """Set the codebook to a k-means solution of ``latents`` ((N, D) or (B, D, H, W))."""
        self._set_codes(kmeans_centres(self, latents, iters))
        self.initialized.fill_(True)

    def _set_codes(self, codes: torch.Tensor, index: torch.Tensor | None = None) -> None:
        if index is None:
            self.embedding.data.copy_(codes)
        else:
            self.embedding.data[index] = codes.to(self.embedding.dtype)

    def _replace_codes(self, dead, latents):
        # The code itself is the vector used for lookup: put it on the latent.
        self._set_codes(latents, dead)

    def _ste(self, z_flat, c, n):
        if self.modified_ste:
            return modified_straight_through(z_flat, c, resolve_ste_d(self.ste_d, n, self.code_dim))
        return straight_through(z_flat, c)

    def _quantize(self, z_flat):
        if self.training and not bool(self.initialized):
            self.init_kmeans(z_flat)
        cb = self.codebook
        idx = self.search(z_flat, cb)
        c = F.embedding(idx, cb)
        loss, stats = vq_loss(z_flat, c, self.beta)
        return self._ste(z_flat, c, z_flat.shape[0]), idx, loss, stats
