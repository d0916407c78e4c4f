"""VQ-VAE-2 EMA codebook (Razavi et al. 2019): codes are exponential moving averages of cell means.

Per training batch (after all-reducing the batch counts n_k and sums s_k over processes when
torch.distributed is initialised, so every process holds the same codebook):
``N_k <- decay N_k + (1 - decay) n_k``, ``S_k <- decay S_k + (1 - decay) s_k``,
Laplace smoothing ``N~_k = (N_k + eps) / (sum N + K eps) * sum N``, ``c_k = S_k / N~_k``.
With frozen data and fixed cells, c_k converges to the cell mean (the k-means M-step, Supp. 8).
Loss: commitment only, ``beta * mse(z, sg(c))``. Defaults: decay 0.99, eps 1e-5, beta 0.25.
State starts at ``N_k = 1``, ``S_k = c_k`` (so unused codes stay put rather than blowing up).

``dead_code_threshold`` > 0: codes whose EMA count N_k falls below it are replaced by random
latents of the current batch, distinct ones where the batch has at least as many latents as there
are dead codes (as the authors' vector-quantize-pytorch samples; identical codes would tie in the
search and all but one stay dead), rank 0's batch under DDP, broadcast. ``rotation_trick``: Fifty et
al. 2024: the encoder receives the gradient through ``sg(||c|| / ||z|| R) z`` where R is the
Householder-pair rotation taking z/||z|| onto c/||c||, instead of the identity STE; the forward
value is still exactly c.

Departure from the paper's baseline: the authors' "VQVAE2" ran a vendored vector-quantize-pytorch
with decay 0.9995, dead-code threshold 1 and the rotation trick ON (library defaults); here the
defaults are the plain VQ-VAE-2 rule (0.99, no replacement, rotation off) and the authors' setting
is ``decay=0.9995, dead_code_threshold=1.0, rotation_trick=True``. Initialisation: U(-1/K, 1/K)
like ``vq`` (``init="normal"`` for N(0, 1)); the library's kaiming-uniform init is not copied.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .base import BaseQuantizer, QuantizerOptions
from .registry import register_quantizer
from .stats import all_reduce_sum_, distributed_ready
from .ste import straight_through
from .vq import kmeans_centres

INITS = ("uniform", "normal", "kmeans")


def rotation_trick(z: torch.Tensor, c: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rows of ``sg(lambda R) z`` with ``R = I - 2 r r^T + 2 c^ z^T``, ``r = (z^ + c^)/||z^ + c^||``,
    ``lambda = ||c|| / ||z||``; value ~ c, gradient to z is (lambda R)^T g."""
    zd, cd = z.detach(), c.detach()
    zn = zd.norm(dim=1, keepdim=True).clamp_min(eps)
    cn = cd.norm(dim=1, keepdim=True)
    zh, ch = zd / zn, cd / cn.clamp_min(eps)
    r = F.normalize(zh + ch, dim=1, eps=eps)
    rz = (r * z).sum(1, keepdim=True)
    zz = (zh * z).sum(1, keepdim=True)
    return (cn / zn) * (z - 2.0 * r * rz + 2.0 * ch * zz)


@dataclass(frozen=True)
class EMAOptions(QuantizerOptions):
    decay: float = 0.99                # EMA decay of cluster sizes and sums
    eps: float = 1e-5                  # Laplace smoothing of the cluster sizes
    beta: float = 0.25                 # commitment weight
    dead_code_threshold: float = 0.0   # > 0: re-seed codes whose EMA cluster size falls below it
    rotation_trick: bool = False
    init: str = "uniform"              # "uniform", "normal" or "kmeans"
    kmeans_iters: int = 10

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.decay, (int, float)) and 0.0 <= self.decay < 1.0):
            raise ValueError(f"decay must be in [0, 1), got {self.decay!r}")
        if not (isinstance(self.eps, (int, float)) and self.eps >= 0):
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        self._nonnegative("beta", "dead_code_threshold")
        self._set(decay=float(self.decay), eps=float(self.eps), rotation_trick=bool(self.rotation_trick),
                  kmeans_iters=int(self.kmeans_iters))


@register_quantizer("ema")
class EMA(BaseQuantizer):
    display_name = "VQ-EMA"     # the label the book prints

    Options = EMAOptions

    def __init__(self, num_codes: int, code_dim: int, **options):
        super().__init__(num_codes, code_dim, **options)
        o = self.options
        self.decay, self.eps, self.beta = o.decay, o.eps, o.beta
        self.dead_code_threshold, self.rotation_trick = o.dead_code_threshold, o.rotation_trick
        self.init, self.kmeans_iters = o.init, o.kmeans_iters
        init = o.init
        k, d = self.num_codes, self.code_dim
        embed = torch.randn(k, d) if init == "normal" else torch.empty(k, d).uniform_(-1.0 / k, 1.0 / k)
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("cluster_size", torch.ones(k))
        self.register_buffer("initialized", torch.tensor(init != "kmeans"))

    @property
    def codebook(self) -> torch.Tensor:
        return self.embed

    @torch.no_grad()
    def init_kmeans(self, latents: torch.Tensor, iters: int | None = None) -> None:
        centres = kmeans_centres(self, latents, iters)
        self.embed.copy_(centres)
        self.embed_avg.copy_(centres)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z_flat: torch.Tensor, idx: torch.Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.num_codes).float()
        sums = torch.zeros_like(self.embed).index_add_(0, idx, z_flat.float())
        all_reduce_sum_(counts)
        all_reduce_sum_(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(1))
        if self.dead_code_threshold > 0:
            dead = torch.nonzero(self.cluster_size < self.dead_code_threshold).reshape(-1)
            if dead.numel():
                n = z_flat.shape[0]
                pick = (torch.randperm(n, device=z_flat.device)[: dead.numel()] if n >= dead.numel()
                        else torch.randint(0, n, (dead.numel(),), device=z_flat.device))
                samples = z_flat[pick].float().contiguous()
                if distributed_ready():
                    dist.broadcast(samples, src=0)
                self._replace_codes(dead, samples, count=self.dead_code_threshold)

    @torch.no_grad()
    def _replace_codes(self, dead, latents, count: float = 1.0):
        self.embed[dead] = latents.to(self.embed.dtype)
        self.embed_avg[dead] = latents.to(self.embed.dtype) * count
        self.cluster_size[dead] = count

    def _quantize(self, z_flat):
        if self.training and not bool(self.initialized):
            self.init_kmeans(z_flat)
        idx = self.search(z_flat, self.embed)
        c = F.embedding(idx, self.embed).clone()
        commit_loss = F.mse_loss(z_flat, c)
        if self.rotation_trick:
            rot = rotation_trick(z_flat, c)
            zq = c + (rot - rot.detach())
        else:
            zq = straight_through(z_flat, c)
        if self.training:
            self._ema_update(z_flat.detach(), idx)
        return zq, idx, self.beta * commit_loss, {"commit_loss": commit_loss}
