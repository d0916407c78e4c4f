"""NS-VQ, the paper's Method 1 (Sec. 3.3): VQ + kernel cross-update of non-winning codes + modified STE.

Paper flavour (default, ``flavor="paper"``):

- kernel cross-update, Eq. 16/17 (the form of Fig. 2a): every code j that is *not* sample i's winner
  is pulled toward E(x_i) with weight ``w_ij = exp(-||E(x_i) - c_j||^2 / (2 sigma^2))``, the weights
  treated as constants. Implemented as the loss
  ``L_kernel = kernel_coef / (N D) * sum_i sum_{j != q_i} w_ij ||sg(z_i) - c_j||^2`` with
  ``kernel_coef = 1/2``: its gradient is ``dL/dc_j = 1/(N D) * sum_i w_ij (c_j - z_i)``, i.e. the
  literal Eq. 16 displacement ``w (E(x_i) - c_j)`` with the same 1/(N D) normalisation as the
  mean-squared codebook loss of the winner (whose gradient is ``2/(N D) (c_q - z_i)``).
  ``kernel_width`` = 2 sigma^2 (1.0 at start) is multiplied by ``kernel_decay`` (0.9) after each
  epoch (Sec. 4) via :meth:`on_epoch_end`.
- modified STE, Eq. 18, on by default with d = B*H*W (the paper's text).
- total loss ``mse(c_q, sg z) + beta mse(z, sg c_q) + L_kernel``.

Official flavour (``flavor="official"``, the authors' CelebA code): weights
``w_ik = clamp(lambda K softmax_k(-||z_i - e_k||^2 / tau), 0, 1)`` with lambda = 0.01, the winner's
weight set to 1; the codebook loss is *replaced* by ``(1/N) sum_i sum_k w_ik ||sg(z_i) - e_k||^2 / D``
(winner included, ``kernel_coef = 1``); ``tau = max(0.5 ** epoch, 1e-8)``; STE d = B*H*W*D.

``kernel_width_rule="relative"`` (a departure of ours, off by default; the paper gives 2 sigma^2 = 1 in
absolute units): 2 sigma^2 = ``kernel_width`` x the median squared distance of the first training
batch's latents to their nearest code (measured once, after any k-means init, kept in a buffer), then
decayed per epoch as usual; so the kernel's reach is set relative to the latents' scale.

``kernel_mass(z)`` (the training probes): the mean number of non-winning codes per latent whose kernel
weight exceeds 0.1 at the current scale (0: the kernel pulls nothing; K - 1: it pulls every code);
the probes take it over the first 4,096 probe latents (64 images at an 8 x 8 latent grid).

``kernel_in_ste=True``: the Supp. 10 variant (Eq. A14/A15): instead of the kernel loss, inject
``sum_{n != q_i} (w_in c_n - sg(w_in c_n))`` into the output (value 0), so non-winning codes get
the decoder's gradient weighted by w (paper: RBF weights; official: soft weights, winner 0).

Efficiency: in training the kernel pass *is* the search: per chunk of latents one GEMM gives
``-||z_i - c_k||^2 / scale`` (the search's expansion, norms folded into augmented vectors), its
argmax the winners, one in-place exp the weights, and a second GEMM accumulates
``[W^T Z | s = W^T 1 | W^T ||z||^2]``; at most one chunk of the N x K weights (``search_chunk_bytes``)
exists at a time. A custom autograd Function returns the closed-form codebook gradient
``2 kernel_coef/(N D) (s_j c_j - (W^T Z)_j)``; the loss value comes from the same sums.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import vq_loss
from .registry import register_quantizer
from .search import PRECISIONS, argmax_rows, cpu_workspace, lowp_matmul, row_chunks, rows_per_chunk
from .vq import VQ, VQOptions

FLAVORS = ("paper", "official")
WIDTH_RULES = ("absolute", "relative")
MASS_THRESHOLD = 0.1        # kernel_mass counts codes with a weight above this
MASS_LATENTS = 4096         # diagnostics(): kernel_mass on at most this many latents


@dataclass(frozen=True)
class NSVQOptions(VQOptions):
    flavor: str = "paper"              # "paper": Eq. 16-17; "official": the authors' code's rule
    kernel: bool = True                # the kernel pull on non-winning codes (off: vanilla VQ + Eq. 18)
    kernel_width: float = 1.0          # 2 sigma^2 at epoch 0 (x the latents' scale with rule "relative")
    kernel_width_rule: str = "absolute"  # "relative": a departure of ours (module docstring)
    kernel_decay: float = 0.9          # 2 sigma^2 <- kernel_decay * 2 sigma^2 per epoch
    kernel_coef: float | None = None   # None: 0.5 (paper), 1.0 (official)
    official_lambda: float = 0.01
    official_tau_floor: float = 1e-8
    kernel_in_ste: bool = False
    modified_ste: bool = True          # Eq. 18 is part of NS-VQ
    ste_d: str | float | None = None   # None: "paper" for the paper flavour, "official" for the code's

    def validate(self) -> None:
        if self.flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, got {self.flavor!r}")
        if self.kernel_width_rule not in WIDTH_RULES:
            raise ValueError(f"kernel_width_rule must be one of {WIDTH_RULES}, got {self.kernel_width_rule!r}")
        if self.kernel_width_rule == "relative" and self.flavor != "paper":
            raise ValueError("kernel_width_rule='relative' scales the paper flavour's 2 sigma^2; the official "
                             "flavour's tau has no width to scale")
        if self.ste_d is None:
            self._set(ste_d="paper" if self.flavor == "paper" else "official")
        if self.kernel_coef is None:
            self._set(kernel_coef=0.5 if self.flavor == "paper" else 1.0)
        for name in ("kernel_width", "kernel_decay", "official_tau_floor"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if not (isinstance(self.kernel_coef, (int, float)) and self.kernel_coef >= 0):
            raise ValueError(f"kernel_coef must be a number >= 0, got {self.kernel_coef!r}")
        super().validate()
        self._set(kernel=bool(self.kernel), kernel_width=float(self.kernel_width),
                  kernel_decay=float(self.kernel_decay), kernel_coef=float(self.kernel_coef),
                  official_lambda=float(self.official_lambda), official_tau_floor=float(self.official_tau_floor),
                  kernel_in_ste=bool(self.kernel_in_ste))


def neg_scaled_distance_chunks(z, codebook, scale, *, chunk_bytes, precision):
    """Yield ``(start, stop, G)`` with ``G = -||z_i - c_k||^2 / scale`` for a chunk of rows (on a CPU
    the blocks share one buffer: use each before asking for the next).

    One GEMM per chunk on augmented vectors, ``[z, ||z||^2, 1] . [2c, -1, -||c||^2]^T / scale``,
    so no separate passes over the N x K block add the norms or apply the scale (the same
    expansion as :mod:`.search`; the argmax of G is the nearest code)."""
    n = z.shape[0]
    zf = z.detach().float()
    c = codebook.detach().float()
    z_ext = torch.cat([zf, zf.pow(2).sum(1, keepdim=True), torch.ones(n, 1, device=z.device)], 1)
    c_ext = torch.cat([2.0 * c, -torch.ones(c.shape[0], 1, device=c.device),
                       -c.pow(2).sum(1, keepdim=True)], 1).div_(scale)
    c_t = c_ext.t() if precision == "fp32" else c_ext.to(PRECISIONS[precision]).t()
    # each block is consumed before the next is made, so on a CPU they share one buffer (the same
    # GEMM, written in place: identical values, no page faults for a fresh block every step)
    buf = cpu_workspace("nsvq", min(n, rows_per_chunk(c.shape[0], chunk_bytes)), c.shape[0], z.device) \
        if precision == "fp32" else None
    for start, stop in row_chunks(n, c.shape[0], chunk_bytes):
        if buf is None:
            yield start, stop, lowp_matmul(z_ext[start:stop], c_t, precision)
        else:
            yield start, stop, torch.mm(z_ext[start:stop], c_t, out=buf[: stop - start])


def kernel_weights_(g: torch.Tensor, idx: torch.Tensor, *, mode: str, winner_weight: float,
                    num_codes: int, lam: float = 0.01, scale: float | None = None) -> torch.Tensor:
    """Turn a chunk ``G = -dist / scale`` (n, K) into kernel weights *in place*.

    mode "rbf": ``exp(G)`` (scale = 2 sigma^2); mode "softmax": ``clamp(lam K softmax(G), 0, 1)``
    (scale = tau). The winner column of each row is then set to ``winner_weight``. ``G <= 0`` up
    to rounding, so RBF weights are not clamped (the winner, at distance ~0, is overwritten).
    """
    if mode == "rbf":
        g.exp_()
    else:
        g.sub_(g.gather(1, idx.unsqueeze(1))).exp_()   # the winner holds the row max of G
        g.mul_((lam * num_codes) / g.sum(1, keepdim=True))
    g.scatter_(1, idx.unsqueeze(1), winner_weight)
    if mode != "rbf":
        g.clamp_(0.0, 1.0)
    return g


class _KernelPull(torch.autograd.Function):
    """loss = coef/(N D) sum_ij w_ij ||z_i - c_j||^2 with constant weights; also returns winners."""

    @staticmethod
    def forward(ctx, z, codebook, wkw, coef, chunk_bytes, precision):
        n, d = z.shape
        k = codebook.shape[0]
        c = codebook.detach().float()
        zf = z.detach().float()
        zsq = zf.pow(2).sum(1, keepdim=True)
        # one GEMM per chunk accumulates [W^T Z | W^T 1 | W^T ||z||^2] (no row/column-sum passes)
        z_acc = torch.cat([zf, torch.ones_like(zsq), zsq], 1)
        acc = torch.zeros(k, d + 2, dtype=torch.float32, device=z.device)
        idx = torch.empty(n, dtype=torch.long, device=z.device)
        for start, stop, g in neg_scaled_distance_chunks(zf, c, wkw["scale"], chunk_bytes=chunk_bytes,
                                                         precision=precision):
            i = argmax_rows(g)
            idx[start:stop] = i
            w = kernel_weights_(g, i, num_codes=k, **wkw)
            acc.addmm_(w.t(), z_acc[start:stop])
        wz, s, wzsq = acc[:, :d], acc[:, d], acc[:, d + 1]
        # sum_ij w_ij ||z_i - c_j||^2 = sum_j s_j ||c_j||^2 - 2 sum_j c_j.(W^T Z)_j + sum_ij w_ij ||z_i||^2
        total = (s * c.pow(2).sum(1)).sum() - 2.0 * (c * wz).sum() + wzsq.sum()
        norm = coef / (n * d)
        ctx.save_for_backward(c, s, wz)
        ctx.norm = norm
        ctx.mark_non_differentiable(idx)
        return (total * norm).clamp_min(0.0), idx

    @staticmethod
    def backward(ctx, grad_loss, grad_idx):
        c, s, wz = ctx.saved_tensors
        grad_c = (s.unsqueeze(1) * c - wz) * (2.0 * ctx.norm) * grad_loss
        return None, grad_c, None, None, None, None


class _KernelInject(torch.autograd.Function):
    """Supp. 10, Eq. A14: forward value 0 (N, D); backward gives code n the gradient sum_i w_in g_i."""

    @staticmethod
    def forward(ctx, z, codebook, idx, wkw, chunk_bytes, precision):
        ctx.save_for_backward(z, codebook.detach(), idx)
        ctx.wkw, ctx.chunk_bytes, ctx.precision = wkw, chunk_bytes, precision
        return torch.zeros_like(z)

    @staticmethod
    def backward(ctx, grad_out):
        z, c, idx = ctx.saved_tensors
        k = c.shape[0]
        grad_c = torch.zeros_like(c, dtype=torch.float32)
        g_up = grad_out.float()
        for start, stop, g in neg_scaled_distance_chunks(z, c, ctx.wkw["scale"], chunk_bytes=ctx.chunk_bytes,
                                                         precision=ctx.precision):
            w = kernel_weights_(g, idx[start:stop], num_codes=k, **ctx.wkw)
            grad_c.addmm_(w.t(), g_up[start:stop])
        return None, grad_c.to(c.dtype), None, None, None, None


@register_quantizer("nsvq")
class NSVQ(VQ):
    display_name = "NS-VQ"     # the label the book prints

    Options = NSVQOptions

    def __init__(self, num_codes: int, code_dim: int, **options):
        super().__init__(num_codes, code_dim, **options)
        o = self.options
        self.flavor, self.kernel, self.kernel_in_ste = o.flavor, o.kernel, o.kernel_in_ste
        self.kernel_width, self.kernel_decay, self.kernel_coef = o.kernel_width, o.kernel_decay, o.kernel_coef
        self.official_lambda, self.official_tau_floor = o.official_lambda, o.official_tau_floor
        self.register_buffer("epochs_done", torch.tensor(0, dtype=torch.long))
        self.relative_width = o.kernel_width_rule == "relative"
        if self.relative_width:      # only then a buffer (older checkpoints keep their keys)
            self.register_buffer("width_ref", torch.tensor(float("nan"), dtype=torch.float64))

    # --------------------------------------------------------------- schedule
    @property
    def current_scale(self) -> float:
        """2 sigma^2 (paper) or tau (official) for the current epoch."""
        e = int(self.epochs_done)
        if self.flavor == "paper":
            ref = float(self.width_ref) if self.relative_width else 1.0
            return self.kernel_width * ref * self.kernel_decay ** e
        return max(0.5 ** e, self.official_tau_floor)

    def on_epoch_end(self, epoch: int, final: bool = False) -> None:
        """After epoch ``epoch`` (0-based): 2 sigma^2 <- width * decay^(epoch+1); tau <- 0.5^(epoch+1)."""
        self.epochs_done.fill_(int(epoch) + 1)
        super().on_epoch_end(epoch, final)

    @torch.no_grad()
    def _set_width_ref(self, z_flat: torch.Tensor) -> None:
        """Rule "relative": the reference scale, once (median squared distance to the nearest code)."""
        _, dist = self.search(z_flat.detach(), self.codebook.detach(), return_distances=True)
        ref = float(dist.double().clamp_min(0).median())
        if not ref > 0:
            raise ValueError("kernel_width_rule='relative': the first batch's latents sit on their codes "
                             "(median squared distance 0), so no relative width can be set")
        self.width_ref.fill_(ref)

    @torch.no_grad()
    def kernel_mass(self, z_flat: torch.Tensor, threshold: float = MASS_THRESHOLD) -> float:
        """Mean number of non-winning codes per latent with kernel weight > ``threshold`` at the
        current scale (the flavour's own weights; no side effects)."""
        if self.relative_width and not bool(torch.isfinite(self.width_ref)):
            return float("nan")          # the reference is set by the first training batch
        k = self.num_codes
        wkw = self._weight_kwargs(True)  # the winner's weight set to 0: only the pull on others counts
        total = 0.0
        for _, _, g in neg_scaled_distance_chunks(z_flat.float(), self.codebook, wkw["scale"],
                                                  chunk_bytes=self.search_chunk_bytes, precision="fp32"):
            w = kernel_weights_(g, argmax_rows(g), num_codes=k, **wkw)
            total += float((w > threshold).sum(dtype=torch.float64))
        return total / z_flat.shape[0]

    def diagnostics(self, z_flat: torch.Tensor, idx: torch.Tensor) -> dict:
        out = super().diagnostics(z_flat, idx)
        out["kernel_scale"] = self.current_scale
        # on the first MASS_LATENTS latents (the probe's first images): the N x K pass is the probe's
        # costliest part at K = 8192
        out["kernel_mass"] = self.kernel_mass(z_flat[:MASS_LATENTS]) if self.kernel else 0.0
        return out

    def _weight_kwargs(self, for_injection: bool) -> dict:
        if self.flavor == "paper":
            return dict(mode="rbf", scale=self.current_scale, winner_weight=0.0)
        return dict(mode="softmax", scale=self.current_scale, lam=self.official_lambda,
                    winner_weight=0.0 if for_injection else 1.0)

    # --------------------------------------------------------------- forward
    def _quantize(self, z_flat):
        if self.training and not bool(self.initialized):
            self.init_kmeans(z_flat)
        if self.training and self.relative_width and not bool(torch.isfinite(self.width_ref)):
            self._set_width_ref(z_flat)
        cb = self.codebook
        use_loss_kernel = self.training and self.kernel and not self.kernel_in_ste
        if use_loss_kernel:
            kernel_loss, idx = _KernelPull.apply(
                z_flat.detach(), cb, self._weight_kwargs(False), self.kernel_coef,
                self.search_chunk_bytes, self.search_precision,
            )
        else:
            idx = self.search(z_flat, cb)
            kernel_loss = None
        c = F.embedding(idx, cb)
        loss, stats = vq_loss(z_flat, c, self.beta)
        if use_loss_kernel and self.flavor == "official":
            # the kernel loss includes the winner (w = 1) and replaces the codebook term
            loss = kernel_loss + self.beta * stats["commit_loss"]
        elif kernel_loss is not None:
            loss = loss + kernel_loss
        if kernel_loss is not None:
            stats["kernel_loss"] = kernel_loss
        stats["kernel_scale"] = self.current_scale
        zq = self._ste(z_flat, c, z_flat.shape[0])
        if self.training and self.kernel and self.kernel_in_ste:
            zq = zq + _KernelInject.apply(
                z_flat.detach(), cb, idx, self._weight_kwargs(True),
                self.search_chunk_bytes, self.search_precision,
            )
        return zq, idx, loss, stats
