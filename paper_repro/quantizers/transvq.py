"""TransVQ, the paper's Method 2 (Sec. 3.4, Eq. 21-26): a frozen base codebook mapped by a small
transformer P_phi, so that every code moves with every update of phi (Eq. 22).

Base codebook C: frozen buffer ``randn(K, D) * D**-0.5``. Map (``mapper="transformer"``):
``Linear(D -> m, no bias)`` -> one pre-LN block ``x + Attn(LN x); x + FFN(LN x)`` with FFN
``m -> mlp_ratio*m``, GELU, ``-> m`` -> final LN -> ``Linear(m -> D, no bias)``. Attention: one head,
linear attention over the K codes as tokens, ``phi = elu + 1``,
``out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j) + 1e-6)``; q/k/v/out
Linear without bias (cost O(K m^2)). Defaults m = 256, mlp_ratio = 2 (Sec. 4). ``mapper="mlp"``:
the paper's faster two-layer MLP variant, here ``Linear(D -> m) -> GELU -> Linear(m -> D)``
(the paper gives no further detail). The codebook C' is recomputed at every forward.
Loss ``mse(C'_q, sg(z)) + 0.25 mse(z, sg(C'_q))`` (Eq. 25 + commitment), plain STE.

Paper vs code: the paper's Eq. 21-23 map the base codes alone (the default here,
``position_embedding=False``); the authors' code adds a learned per-code position embedding
``Embedding(K, m)`` (N(0, 1)) to the projected base codes (``position_embedding=True``). Every grid
spells the option out, so a record says which map it trained.

``codebook_scale`` (1.0 by default: the paper's map) multiplies the mapped codebook, a departure of
ours from the audit of why TransVQ collapsed in this book's first (ci-scale) runs (``data/notes/transvq_audit.md``):
the final LayerNorm fixes each code's length, so at initialisation C' has an RMS spread of ~4.6 at
D = 64 against ~0.1 for a fresh encoder's latents, and every latent picks the one code of smallest
norm. ``codebook_scale = D**-0.5`` starts C' at SimVQ's scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import BaseQuantizer, QuantizerOptions
from .registry import register_quantizer

MAPPERS = ("transformer", "mlp")


class LinearAttention(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.eps = eps

    def features(self, x: torch.Tensor):
        """``(phi(q), phi(k), den)`` over tokens ``x`` (K, m): the feature maps ``phi = elu + 1`` of
        queries and keys, and each row's normaliser ``phi(q_i)^T sum_j phi(k_j) + eps``."""
        q = F.elu(F.linear(x, self.q.weight.to(x.dtype))) + 1.0
        k = F.elu(F.linear(x, self.k.weight.to(x.dtype))) + 1.0
        return q, k, q @ k.sum(0) + self.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (K, m), tokens = codes
        q, k, den = self.features(x)
        kv = k.t() @ self.v(x)               # (m, m) = sum_j phi(k_j) v_j^T
        return self.out((q @ kv) / den.unsqueeze(1))

    @torch.no_grad()
    def singular_values(self, x: torch.Tensor) -> torch.Tensor:
        """Singular values of the (K, K) row-normalised attention matrix
        ``A_ij = phi(q_i).phi(k_j) / (phi(q_i).sum_j phi(k_j) + eps)`` over tokens ``x`` (K, m), in
        float64, without forming it: ``A = (D^-1 Q) K^T`` has rank <= m, and with ``K = U R`` (QR),
        its singular values are those of the (K, m) matrix ``D^-1 Q R^T``."""
        q, k, den = self.features(x.double())
        _, r = torch.linalg.qr(k)
        return torch.linalg.svdvals((q / den.unsqueeze(1)) @ r.t())


class TransformerMapper(nn.Module):
    def __init__(self, num_codes: int, code_dim: int, model_dim: int = 256, mlp_ratio: float = 2.0,
                 position_embedding: bool = False):
        super().__init__()
        hidden = int(round(model_dim * mlp_ratio))
        self.inp = nn.Linear(code_dim, model_dim, bias=False)
        # the authors' code adds a learned per-code embedding (K x m free parameters); the paper's
        # Eq. 21-23 map the base codes alone (position_embedding=False, the default)
        self.pos = nn.Embedding(num_codes, model_dim) if position_embedding else None  # N(0, 1) init
        self.ln1 = nn.LayerNorm(model_dim)
        self.attn = LinearAttention(model_dim)
        self.ln2 = nn.LayerNorm(model_dim)
        self.ffn = nn.Sequential(nn.Linear(model_dim, hidden), nn.GELU(), nn.Linear(hidden, model_dim))
        self.ln_f = nn.LayerNorm(model_dim)
        self.outp = nn.Linear(model_dim, code_dim, bias=False)

    def tokens(self, base: torch.Tensor) -> torch.Tensor:
        """The block's input: the projected base codes (plus the position embedding, if any)."""
        x = self.inp(base)
        return x + self.pos.weight if self.pos is not None else x

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        x = self.tokens(base)
        x = x + self.attn(self.ln1(x))
        x = x + self.ffn(self.ln2(x))
        return self.outp(self.ln_f(x))


class MLPMapper(nn.Module):
    def __init__(self, code_dim: int, model_dim: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(code_dim, model_dim), nn.GELU(), nn.Linear(model_dim, code_dim))

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        return self.net(base)


@dataclass(frozen=True)
class TransVQOptions(QuantizerOptions):
    mapper: str = "transformer"        # "transformer" (Eq. 21-23) or "mlp"
    model_dim: int = 256
    mlp_ratio: float = 2.0
    beta: float = 0.25
    position_embedding: bool = False   # True: the authors' code's learned per-code embedding
    codebook_scale: float = 1.0        # a departure of ours (module docstring); 1.0: the paper's map

    def validate(self) -> None:
        super().validate()
        if self.mapper not in MAPPERS:
            raise ValueError(f"mapper must be one of {MAPPERS}, got {self.mapper!r}")
        if isinstance(self.model_dim, bool) or not isinstance(self.model_dim, int) or self.model_dim < 1:
            raise ValueError(f"model_dim must be an int >= 1, got {self.model_dim!r}")
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if not isinstance(self.position_embedding, bool):
            raise ValueError(f"position_embedding must be True or False, got {self.position_embedding!r}")
        self._nonnegative("beta")
        v = self.codebook_scale
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"codebook_scale must be a number > 0, got {v!r}")
        self._set(codebook_scale=float(v))


@register_quantizer("transvq")
class TransVQ(BaseQuantizer):
    display_name = "TransVQ"     # the label the book prints

    Options = TransVQOptions

    def __init__(self, num_codes: int, code_dim: int, **options):
        super().__init__(num_codes, code_dim, **options)
        o = self.options
        self.mapper_kind, self.beta = o.mapper, o.beta
        mapper, model_dim, mlp_ratio, position_embedding = o.mapper, o.model_dim, o.mlp_ratio, o.position_embedding
        self.register_buffer("base", torch.randn(self.num_codes, self.code_dim) * self.code_dim ** -0.5)
        if mapper == "transformer":
            self.mapper = TransformerMapper(self.num_codes, self.code_dim, model_dim, mlp_ratio, position_embedding)
        else:
            self.mapper = MLPMapper(self.code_dim, model_dim)

    @property
    def codebook(self) -> torch.Tensor:
        c = self.mapper(self.base)
        return c if self.options.codebook_scale == 1.0 else c * self.options.codebook_scale

    @torch.no_grad()
    def _replace_codes(self, dead, latents):
        """The map mixes all codes (attention, LayerNorm), so a base code cannot be solved for in
        general. Rule: for each latent, find its nearest live mapped code j and copy j's base row
        (and position embedding) into the dead code k, plus noise of 1% of the base std: code k then
        lands next to code j, inside the populated cell of that latent, and the two split it."""
        cb = self.codebook.float()
        alive = torch.ones(self.num_codes, dtype=torch.bool, device=cb.device)
        alive[dead] = False
        if not bool(alive.any()):
            return
        live_idx = torch.nonzero(alive).reshape(-1)
        j = live_idx[self.search(latents.float(), cb[live_idx])]
        noise = torch.randn_like(self.base[dead]) * (0.01 * self.code_dim ** -0.5)
        self.base[dead] = self.base[j] + noise
        if isinstance(self.mapper, TransformerMapper) and self.mapper.pos is not None:
            self.mapper.pos.weight[dead] = self.mapper.pos.weight[j]

    @torch.no_grad()
    def attention_rank(self) -> float:
        """Effective rank (``metrics.latent.entropy_rank``) of the mapper's attention matrix over the
        K codes (1: every code attends alike; up to min(K, m)); NaN for the MLP mapper."""
        from ..metrics.latent import entropy_rank

        m = self.mapper
        if not isinstance(m, TransformerMapper):
            return float("nan")
        return entropy_rank(m.attn.singular_values(m.ln1(m.tokens(self.base))))

    def diagnostics(self, z_flat: torch.Tensor, idx: torch.Tensor) -> dict:
        out = super().diagnostics(z_flat, idx)
        out["attention_rank"] = self.attention_rank()
        return out

    def _quantize(self, z_flat):
        return self._quantize_plain(z_flat, self.codebook, self.beta)
