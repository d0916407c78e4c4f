"""Training probes: the state of latents and codebook, measured on fixed images during a run.

With ``probe_every = N > 0`` (config), the trainer measures at step 0 (once the codebook is
initialised), every N optimiser steps, and at every epoch's end, on the first ``probe_images``
images of the evaluation split, in eval mode, without gradients and without touching any RNG (so a
run with probes trains exactly as the same run without them; a test checks this). Each measurement
is one dict in ``record["probes"]``:

- ``step``, ``epoch``;
- token collapse: ``probe_usage`` (fraction of the K codes that some probe latent selects), and
  ``probe_psnr`` (mean PSNR of the probe images' reconstructions, as in evaluation);
- embedding collapse (seed 003): ``latent_rank`` (participation ratio of the latents' covariance,
  1 ... D), ``latent_spread`` (their RMS distance from their mean);
- drift (Sec. 3.2): ``churn`` (fraction of probe latents whose code changed since the previous
  probe: the encoder's drift and the codebook's own moves together), ``churn_per_step`` (that over
  the steps between the two probes; the per-step rate only while it is small), ``churn_encoder``
  and ``churn_encoder_per_step`` (the same with the quantizer held as it was at the previous probe:
  the encoder's share alone, Eq. 4), ``relative_drift`` (mean ||z_t - z_prev|| over the mean
  distance of a latent to its code at the previous probe);
- the quantizer's own (``BaseQuantizer.diagnostics``): ``code_spread``, ``code_rank``,
  ``quantization_rms``, ``code_stacked`` (runs since 2026-12-05, 22:30 UTC), and per method e.g. NS-VQ's ``kernel_mass`` / ``kernel_scale``, TransVQ's
  ``attention_rank``.

The previous probe's latents, codes and quantizer state (without the replacement reservoir and the
usage counts) are kept in the checkpoint, so a resumed run's next churn is the same number as
without the interruption. Non-finite values are stored as None (JSON has no NaN).
"""
from __future__ import annotations

import copy
import math

import torch

from ..metrics.image import psnr
from ..metrics.latent import assignment_churn, participation_ratio, rms_spread


#: quantizer state the previous probe does not keep: what ``assign`` does not read
_NOT_KEPT = ("replacer.", "usage.")


def _finite_or_none(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class LatentProbe:
    """Measures a model on fixed images; holds the previous measurement's latents and codes."""

    def __init__(self, images: torch.Tensor, every: int, device):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"probe_every must be an int >= 1, got {every!r}")
        self.images, self.every, self.device = images, every, device
        self.prev: dict | None = None          # {"step", "z", "idx", "q_dist"} of the last measurement

    def due(self, step: int) -> bool:
        return step % self.every == 0

    @torch.no_grad()
    def measure(self, model, step: int, epoch: int, to_float) -> dict:
        """One measurement of ``model`` (restored to training mode afterwards if it was training)."""
        was_training = model.training
        model.eval()
        try:
            x = to_float(self.images.to(self.device))
            z = model.encode(x).float()
            z_flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
            q = model.quantizer
            idx = q.assign(z_flat)          # the code the quantizer itself selects (fc: in its lookup space)
            recon = model.decode(q.lookup(idx.reshape(z.shape[0], z.shape[2], z.shape[3]))).float().clamp(0, 1)
            out = {"step": int(step), "epoch": int(epoch),
                   "probe_usage": float(torch.unique(idx).numel()) / q.num_codes,
                   "probe_psnr": float(psnr(recon, x).double().mean()),
                   "latent_rank": participation_ratio(z_flat), "latent_spread": rms_spread(z_flat)}
            out.update(self._drift(z_flat, idx, step, q))
            out.update(q.diagnostics(z_flat, idx))
            q_dist = float((z_flat.double() - q.codebook.detach().double()[idx]).norm(dim=1).mean())
        finally:
            model.train(was_training)
        self.prev = {"step": int(step), "z": z_flat.cpu(), "idx": idx.cpu(), "q_dist": q_dist,
                     "q_state": {k: v.detach().cpu().clone() for k, v in q.state_dict().items()
                                 if not k.startswith(_NOT_KEPT)}}
        return {k: _finite_or_none(v) for k, v in out.items()}

    def _drift(self, z_flat: torch.Tensor, idx: torch.Tensor, step: int, q=None) -> dict:
        if self.prev is None:
            return {"churn": None, "churn_per_step": None, "churn_encoder": None,
                    "churn_encoder_per_step": None, "relative_drift": None}
        pz, pidx = self.prev["z"].to(z_flat.device), self.prev["idx"].to(idx.device)
        churn = assignment_churn(pidx, idx)
        steps = step - self.prev["step"]
        enc = None
        if q is not None and self.prev.get("q_state") is not None:
            held = copy.deepcopy(q)           # the quantizer as at the previous probe (no RNG touched)
            held.load_state_dict({k: v.to(z_flat.device) for k, v in self.prev["q_state"].items()}, strict=False)
            enc = assignment_churn(pidx, held.assign(z_flat))
        move = float((z_flat.double() - pz.double()).norm(dim=1).mean())
        q_dist = self.prev["q_dist"]
        per = (lambda c: c / steps if c is not None and steps > 0 else None)
        return {"churn": churn, "churn_per_step": per(churn), "churn_encoder": enc,
                "churn_encoder_per_step": per(enc), "relative_drift": move / q_dist if q_dist > 0 else None}

    # -- checkpoint -------------------------------------------------------------------------------------
    def state(self) -> dict | None:
        return None if self.prev is None else dict(self.prev)

    def load(self, s: dict | None) -> None:
        self.prev = None if s is None else dict(s)
