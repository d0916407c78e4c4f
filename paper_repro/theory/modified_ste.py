"""Supp. 9, executable: the modified STE (Eq. 18 / A21) and the delay-free correction (Eq. A19).

With ``L_emb = (1/d) sum_n ||sg(E_n) - c_{q_n}||^2`` (Eq. A16) and the modified straight-through output

    Q_n = E_n + sg(c_{q_n} - E_n) + (2/d) c_{q_n} - sg((2/d) c_{q_n})            (Eq. A21)

the forward value is ``c_{q_n}``, the encoder receives ``dL/dQ_n`` unchanged, and code ``k`` receives

    dL_total/dc_k = sum_{n: q_n = k} [ (2/d)(c_k - E_n) + (2/d) dL/dQ_n ]        (closed form)

i.e. the codebook-loss term plus ``(2/d)`` times the decoder's gradient: the gradient of
``(1/d)||sg(E_n - lambda dL/dE_n) - c||^2`` with ``lambda = 1`` (Eq. A19 with the encoder's step folded
in). Signs here are those of gradient descent; the paper prints Eq. A17 as an ascent step
(``E + lambda dL/dE``) and Eq. A19's first term as ``(2/d)(E - c)``, two slips that cancel in the
correction term. Two caveats the walkthrough makes explicit: (i) Eq. A19's ``E^{(t+1)}`` is the encoder output
after a step of size ``lambda``, but Eq. A21 carries no ``lambda``: the correction equals A19 only up to
that factor, and under SGD on the codebook the extra pull is ``eta (2/d) dL/dQ`` — the encoder's
*output-space* step only if the NTK is the identity; (ii) the two terms share ``d`` only if the codebook
loss is normalised by the same ``d``: the project's VQ uses ``mse`` (mean over ``N D`` elements), which
matches ``ste_d="official"`` (``d = N D``), not ``"paper"`` (``d = N``).

:func:`delay_free_experiment` measures ``||E^{(t+1)}(x_n) - c^{(t+1)}_{q_n}||^2`` for the batch latents
over a few SGD steps of a small real VQ-VAE, with vs without the modification.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import assign, flat_latents, lloyd_torch, load_images, make_encoder


def modified_ste_output(z: torch.Tensor, code: torch.Tensor, d: float) -> torch.Tensor:
    """Eq. A21 written out literally (independent of ``paper_repro.quantizers``)."""
    return z + (code - z).detach() + (2.0 / d) * code - ((2.0 / d) * code).detach()


def codebook_gradient_autograd(z: torch.Tensor, codebook: torch.Tensor, upstream: torch.Tensor, d: float,
                               modified: bool = True) -> torch.Tensor:
    """Gradient on the codebook of ``<upstream, Q> + (1/d) sum_n ||sg(z_n) - c_{q_n}||^2`` by autograd.

    ``<upstream, Q>`` stands for any downstream loss with ``dL/dQ = upstream``.
    """
    c = codebook.detach().clone().requires_grad_(True)
    q = assign(z, c.detach())
    cq = c[q]
    out = modified_ste_output(z, cq, d) if modified else z + (cq - z).detach()
    loss = (upstream * out).sum() + ((z.detach() - cq) ** 2).sum() / d
    (grad,) = torch.autograd.grad(loss, c)
    return grad


def codebook_gradient_closed_form(z: torch.Tensor, codebook: torch.Tensor, upstream: torch.Tensor, d: float,
                                  modified: bool = True) -> torch.Tensor:
    """``sum_{n: q_n = k} (2/d)(c_k - z_n) [+ (2/d) upstream_n]`` (Eq. A19 via Eq. A21)."""
    q = assign(z, codebook)
    per = (2.0 / d) * (codebook[q] - z)
    if modified:
        per = per + (2.0 / d) * upstream
    return torch.zeros_like(codebook).index_add_(0, q, per)


def project_quantizer_gradient(z: torch.Tensor, num_codes: int, upstream: torch.Tensor, ste_d="paper",
                               seed: int = 0):
    """Codebook gradient of ``paper_repro.quantizers`` VQ with ``modified_ste=True`` for latents
    ``z`` (B, D, H, W) and ``dL/dQ = upstream``; returns (grad, codebook, flat latents, flat upstream).
    """
    from paper_repro.quantizers import build_quantizer

    torch.manual_seed(seed)
    b, dim, h, w = z.shape
    qz = build_quantizer("vq", num_codes=num_codes, code_dim=dim, modified_ste=True, ste_d=ste_d).double()
    with torch.no_grad():
        qz.embedding.copy_(flat_latents(z)[torch.randperm(b * h * w)[:num_codes]] + 0.01)
    out = qz(z)
    loss = (upstream * out.quantized).sum() + out.loss
    (grad,) = torch.autograd.grad(loss, qz.embedding)
    return grad, qz.embedding.detach().clone(), flat_latents(z), flat_latents(upstream)


def delay_free_experiment(steps: int = 5, batch_size: int = 16, lr: float = 0.01, num_codes: int = 32,
                          code_dim: int = 8, width: float = 0.125, d_mode: str = "paper", seed: int = 0,
                          n_images: int = 256, beta: float = 0.25, pretrain_steps: int = 100,
                          dtype: torch.dtype = torch.float64):
    """Same init, same batches, plain SGD (lr) on encoder, decoder and codebook, ``steps`` steps, with the
    plain STE vs Eq. A21. Returns a DataFrame with, per step and variant, the mean squared distance
    between the batch latents after the update, ``E^{(t+1)}(x_n)``, and their (updated) selected codes
    ``c^{(t+1)}_{q_n}``, and the same before the update. ``d_mode``: "paper" (d = N = B h w) or
    "official" (d = N D); the codebook loss uses the same ``d``: ``(1/d) sum ||sg(E) - c||^2``.
    ``dtype`` of the compared steps: float64 by default, so the ~1e-5 gap between the variants is not
    drowned by float32 rounding amplified over the steps (in float32 the "gap" was mostly rounding, up
    to 3e-4, and on another CPU the page's verdict on it turned inconclusive). The pre-training stays float32;
    its result differs a little between CPUs, and both variants start from it.
    """
    import pandas as pd

    if d_mode not in ("paper", "official"):
        raise ValueError(f"d_mode must be 'paper' or 'official', got {d_mode!r}")
    x = load_images(n_images, 32, seed=0)
    enc0, dec0 = make_encoder(code_dim, width, seed, decoder=True)
    if pretrain_steps:
        g = torch.Generator().manual_seed(30_000 + seed)
        opt = torch.optim.Adam(list(enc0.parameters()) + list(dec0.parameters()), lr=1e-3)
        for _ in range(pretrain_steps):
            xb = x[torch.randint(0, n_images, (32,), generator=g)]
            loss = F.mse_loss(dec0(enc0(xb)), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    x, enc0, dec0 = x.to(dtype), enc0.to(dtype), dec0.to(dtype)
    with torch.no_grad():
        cb0 = lloyd_torch(flat_latents(enc0(x)), num_codes, iters=100, seed=seed)
    order = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed))
    rows = []
    for variant in ("plain STE", "modified STE (Eq. A21)"):
        enc, dec = (m.to(dtype) for m in make_encoder(code_dim, width, seed, decoder=True))
        enc.load_state_dict(enc0.state_dict())
        dec.load_state_dict(dec0.state_dict())
        cb = torch.nn.Parameter(cb0.clone())
        opt = torch.optim.SGD(list(enc.parameters()) + list(dec.parameters()) + [cb], lr=lr)
        for t in range(steps):
            xb = x[order[(t * batch_size) % n_images:][:batch_size]]
            ze = enc(xb)
            zf = flat_latents(ze)
            n = zf.shape[0]
            d = float(n) if d_mode == "paper" else float(n * code_dim)
            with torch.no_grad():
                q = assign(zf, cb)
                before = float(((zf - cb[q]) ** 2).sum(1).mean())
            c = cb[q]
            flat_out = modified_ste_output(zf, c, d) if variant.startswith("modified") else zf + (c - zf).detach()
            flat_out.retain_grad()
            out = flat_out.reshape(ze.shape[0], ze.shape[2], ze.shape[3], -1).permute(0, 3, 1, 2)
            loss = (F.mse_loss(dec(out), xb) + ((zf.detach() - c) ** 2).sum() / d
                    + beta * ((zf - c.detach()) ** 2).sum() / d)
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                up = flat_out.grad                     # dL/dQ (reconstruction part reaches Q only)
                corr = torch.zeros_like(cb).index_add_(0, q, (2.0 / d) * up).norm()
                emb = torch.zeros_like(cb).index_add_(0, q, (2.0 / d) * (c - zf)).norm()
            opt.step()
            with torch.no_grad():
                z_new = flat_latents(enc(xb))
                after = float(((z_new - cb[q]) ** 2).sum(1).mean())
                stale = float(((z_new - (c.detach())) ** 2).sum(1).mean())
            rows.append({"variant": variant, "step": t + 1, "dist_before": before,
                         "dist_after_E(t+1)_c(t+1)": after, "dist_E(t+1)_c(t)": stale,
                         "correction/emb_grad_norm": float(corr / emb.clamp_min(1e-30))})
    return pd.DataFrame(rows)
