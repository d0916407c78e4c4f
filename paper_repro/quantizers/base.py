"""BaseQuantizer: validation, (B, D, H, W) <-> (N, D) flattening, search, usage, lookup, config.

A method implements ``_quantize(z_flat) -> (zq_flat, indices, loss, stats)`` and the ``codebook``
property; everything else (input checks, reshaping, usage counting, replacement hooks, stats
formatting) lives here once. A method's options are a frozen dataclass (``Options``, a subclass of
:class:`QuantizerOptions`), validated once when it is built; ``q.options`` holds them and ``q.config``
is their dict with the name, K and D. Options shared by every method:

- ``search_chunk_bytes`` (default 256 MiB): byte budget of one N_chunk x K distance block;
- ``search_precision`` ("fp32" default, "bf16", "fp16"): dtype of the z.C^T matmul;
- ``track_usage`` (False): also count code usage in eval mode (always counted in training);
- ``check_finite`` (True): raise on NaN/Inf input (one device sync per forward);
- ``replacement`` (None or dict): dead-code replacement from a reservoir of recent latents
  (see :mod:`paper_repro.quantizers.replacement`).
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .search import DEFAULT_CHUNK_BYTES, check_chunk_bytes, check_precision, nearest_code
from .stats import CodeUsage, batch_perplexity
from .ste import straight_through


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor          # (B, D, H, W), straight-through output
    indices: torch.Tensor            # (B, H, W) int64
    loss: torch.Tensor               # scalar: the quantizer's own loss terms
    stats: dict = field(default_factory=dict)  # detached python floats for logging


def _to_floats(stats: dict) -> dict:
    """Detached python floats, with a single device->host copy for all tensor values."""
    out = {k: float(v) for k, v in stats.items() if not isinstance(v, torch.Tensor)}
    keys = [k for k, v in stats.items() if isinstance(v, torch.Tensor)]
    if keys:
        dev = stats[keys[0]].device
        vals = torch.stack([stats[k].detach().float().reshape(()).to(dev) for k in keys]).tolist()
        out.update(zip(keys, vals))
    return {k: out[k] for k in stats}


def vq_loss(z: torch.Tensor, c: torch.Tensor, beta: float):
    """The VQ-VAE codebook and commitment terms (Sec. 3.1; Eq. 2 as a mean over elements):
    ``mse(c, sg z) + beta * mse(z, sg c)``. Returns ``(loss, stats)``."""
    codebook_loss = F.mse_loss(c, z.detach())
    commit_loss = F.mse_loss(z, c.detach())
    return codebook_loss + beta * commit_loss, {"codebook_loss": codebook_loss, "commit_loss": commit_loss}


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class QuantizerOptions:
    """The options every method takes. A method subclasses this with its own (frozen) fields and
    extends :meth:`validate`; :meth:`parse` builds one from a dict with clear errors."""
    search_chunk_bytes: int = DEFAULT_CHUNK_BYTES
    search_precision: str = "fp32"
    track_usage: bool = False
    check_finite: bool = True
    replacement: dict | None = None

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"option {f.name!r} must be a finite number, got {v!r}")
        self.validate()

    def validate(self) -> None:
        """Check the fields (raise ValueError naming the option) and canonicalise them (``_set``)."""
        check_chunk_bytes(self.search_chunk_bytes)
        check_precision(self.search_precision)
        self._set(track_usage=bool(self.track_usage), check_finite=bool(self.check_finite))
        if self.replacement is not None:
            from .replacement import CodeReplacer

            if not isinstance(self.replacement, dict):
                raise ValueError(f"replacement must be a dict of options or None, got {self.replacement!r}")
            valid = sorted(set(inspect.signature(CodeReplacer.__init__).parameters) - {"self", "num_codes", "code_dim"})
            unknown = sorted(set(self.replacement) - set(valid))
            if unknown:
                raise ValueError(f"replacement: unknown option(s) {unknown}; valid options: {', '.join(valid)}")

    def _nonnegative(self, *names: str) -> None:
        """Each option in ``names`` must be a number >= 0 (stored as float)."""
        for n in names:
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"{n} must be a number >= 0, got {v!r}")
            self._set(**{n: float(v)})

    def _set(self, **values) -> None:
        """Canonicalise fields during validation (the dataclass is frozen afterwards)."""
        for k, v in values.items():
            object.__setattr__(self, k, v)

    @classmethod
    def parse(cls, method: str, options: dict) -> "QuantizerOptions":
        """``cls(**options)``, with unknown names and bad values reported for quantizer ``method``."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"{method!r} quantizer: unknown option(s) {unknown}; valid options: "
                             f"{', '.join(sorted(valid))}")
        try:
            return cls(**options)
        except ValueError as e:
            raise ValueError(f"{method!r} quantizer: {e}") from None


class BaseQuantizer(nn.Module):
    quantizer_name = "base"
    Options = QuantizerOptions

    def __init__(self, num_codes: int, code_dim: int, **options):
        super().__init__()
        self.num_codes = _check_positive_int("num_codes (K)", num_codes)
        self.code_dim = _check_positive_int("code_dim (D)", code_dim)
        self.options = o = type(self).Options.parse(self.quantizer_name, options)
        self.config = {"name": self.quantizer_name, "num_codes": num_codes, "code_dim": code_dim,
                       **dataclasses.asdict(o)}
        self.search_chunk_bytes, self.search_precision = o.search_chunk_bytes, o.search_precision
        self.track_usage, self.check_finite = o.track_usage, o.check_finite
        self.usage = CodeUsage(self.num_codes)
        self.replacer = None
        if o.replacement is not None:
            from .replacement import CodeReplacer
            self.replacer = CodeReplacer(self.num_codes, self.code_dim, **o.replacement)

    # ----------------------------------------------------------------- to implement per method
    @property
    def codebook(self) -> torch.Tensor:
        """(K, D) effective code vectors used for lookup (after any map)."""
        raise NotImplementedError

    def _quantize(self, z_flat: torch.Tensor):
        """(N, D) fp32 -> (zq_flat (N, D), indices (N,), loss (scalar), stats dict of 0-dim tensors)."""
        raise NotImplementedError

    def _quantize_plain(self, z_flat: torch.Tensor, codebook: torch.Tensor, beta: float):
        """Nearest code, :func:`vq_loss`, plain STE: the ``_quantize`` of methods whose only
        difference is how ``codebook`` is produced (SimVQ, TransVQ)."""
        idx = self.search(z_flat, codebook)
        c = F.embedding(idx, codebook)
        loss, stats = vq_loss(z_flat, c, beta)
        return straight_through(z_flat, c), idx, loss, stats

    def _replace_codes(self, dead: torch.Tensor, latents: torch.Tensor) -> None:
        """Make codes ``dead`` (int64) represent ``latents`` (len(dead), D); see replacement.py."""
        raise NotImplementedError(f"{self.quantizer_name!r} does not implement code replacement")

    # ----------------------------------------------------------------- shared machinery
    def search(self, z_flat: torch.Tensor, codebook: torch.Tensor, return_distances: bool = False):
        return nearest_code(
            z_flat, codebook, chunk_bytes=self.search_chunk_bytes,
            precision=self.search_precision, return_distances=return_distances,
        )

    @torch.no_grad()
    def assign(self, z_flat: torch.Tensor) -> torch.Tensor:
        """(N, D) latents -> (N,) the codes a forward pass would select, with no side effect (no usage
        counted, nothing replaced, no RNG): the nearest row of :attr:`codebook`. A method that searches
        in another space overrides it (fc: the normalised lookup space)."""
        return self.search(z_flat.float(), self.codebook.detach())

    def _check_input(self, z) -> None:
        if not isinstance(z, torch.Tensor):
            raise ValueError(f"{self.quantizer_name}: expected a torch.Tensor, got {type(z).__name__}")
        if z.dim() != 4:
            raise ValueError(
                f"{self.quantizer_name}: expected latents of shape (B, D, H, W), got {tuple(z.shape)}"
            )
        if z.shape[1] != self.code_dim:
            raise ValueError(
                f"{self.quantizer_name}: latent channel dim {z.shape[1]} != code_dim {self.code_dim} "
                f"(shape {tuple(z.shape)}; expected (B, {self.code_dim}, H, W))"
            )
        if not z.is_floating_point():
            raise ValueError(f"{self.quantizer_name}: latents must be floating point, got {z.dtype}")
        if z.numel() == 0:
            raise ValueError(f"{self.quantizer_name}: empty latent tensor {tuple(z.shape)}")
        if self.check_finite and not bool(torch.isfinite(z).all()):
            raise ValueError(f"{self.quantizer_name}: latents contain NaN or Inf")

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        self._check_input(z)
        b, d, h, w = z.shape
        if self.training and self.replacer is not None and self.replacer.pending:
            self.replace_dead_codes()
        z_flat = z.float().permute(0, 2, 3, 1).reshape(-1, d)
        with torch.autocast(device_type=z.device.type, enabled=False):  # quantizers run in fp32
            zq_flat, idx, loss, stats = self._quantize(z_flat)
        quantized = zq_flat.reshape(b, h, w, d).permute(0, 3, 1, 2).contiguous()
        indices = idx.reshape(b, h, w)
        if self.training or self.track_usage:
            self.usage.update(indices)
        if self.training and self.replacer is not None:
            self.replacer.observe(z_flat.detach(), idx)
        stats = dict(stats)
        stats["perplexity_batch"] = batch_perplexity(idx, self.num_codes)
        return QuantizerOutput(quantized=quantized, indices=indices, loss=loss, stats=_to_floats(stats))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int64 -> (B, D, H, W) code vectors."""
        if not isinstance(indices, torch.Tensor) or indices.dtype != torch.long:
            raise ValueError(f"{self.quantizer_name}.lookup expects an int64 tensor of indices")
        if indices.dim() != 3:
            raise ValueError(f"{self.quantizer_name}.lookup expects (B, H, W) indices, got {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_codes):
            raise ValueError(f"{self.quantizer_name}.lookup: indices out of range [0, {self.num_codes})")
        with torch.autocast(device_type=indices.device.type, enabled=False):
            return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def diagnostics(self, z_flat: torch.Tensor, idx: torch.Tensor) -> dict:
        """The codebook's state seen from latents ``z_flat`` (N, D) and their codes ``idx`` (N,), for
        the training probes (no side effects, no RNG): ``code_spread`` (RMS distance of the K codes
        from their mean), ``code_rank`` (participation ratio of the codes' covariance),
        ``quantization_rms`` (RMS distance of a latent to its code), ``code_stacked`` (fraction of
        the K codes within ``STACK_TOL`` latent spreads of another code: codes sitting on each other,
        as NS-VQ's kernel gathers them). Methods add their own."""
        from ..metrics.latent import STACK_TOL, participation_ratio, rms_spread, stacked_fraction

        cb = self.codebook.detach()
        err = (z_flat.detach().double() - F.embedding(idx, cb).double()).pow(2).sum(1).mean().sqrt()
        return {"code_spread": rms_spread(cb), "code_rank": participation_ratio(cb),
                "quantization_rms": float(err),
                "code_stacked": stacked_fraction(cb, STACK_TOL * rms_spread(z_flat))}

    def data_init_images(self) -> int:
        """How many training images' latents the trainer must hand to the quantizer before the first
        step (a k-means initialisation on more than one batch); 0: none (the default)."""
        return 0

    def on_epoch_end(self, epoch: int, final: bool = False) -> None:
        """Per-epoch hook called by the trainer after epoch ``epoch`` (0-based) finished; ``final``: no
        training step follows. A replacement then would only move dead codes onto latents for the final
        evaluation to select, without a step of training on them (it raised the replacement runs' eval
        usage above what the trained codebook uses), so the epoch-end replacement is skipped."""
        if self.replacer is not None and self.replacer.every == "epoch" and not final:
            self.replace_dead_codes()

    @torch.no_grad()
    def replace_dead_codes(self) -> int:
        """Replace codes used fewer than ``threshold`` times since the last replacement; returns how many."""
        if self.replacer is None:
            return 0
        self.replacer.pending = False
        dead, latents = self.replacer.draw()
        if dead.numel():
            self._replace_codes(dead, latents)
        return int(dead.numel())

    def extra_repr(self) -> str:
        opts = {k: v for k, v in getattr(self, "config", {}).items() if k not in ("name",)}
        return ", ".join(f"{k}={v!r}" for k, v in opts.items())
