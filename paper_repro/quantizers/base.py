"""BaseQuantizer: validation, (B, D, H, W) <-> (N, D) flattening, search, usage, lookup, config.

A method implements ``_quantize(z_flat) -> (zq_flat, indices, loss, stats)`` and the ``codebook``
property; everything else (input checks, reshaping, usage counting, replacement hooks, stats
formatting) lives here once. Options shared by every method:

- ``search_chunk_bytes`` (default 256 MiB): byte budget of one N_chunk x K distance block;
- ``search_precision`` ("fp32" default, "bf16", "fp16"): dtype of the z.C^T matmul;
- ``track_usage`` (False): also count code usage in eval mode (always counted in training);
- ``check_finite`` (True): raise on NaN/Inf input (one device sync per forward);
- ``replacement`` (None or dict): dead-code replacement from a reservoir of recent latents
  (see :mod:`paper_repro.quantizers.replacement`).
"""
from __future__ import annotations

import functools
import math
import inspect
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


def _init_params(fn) -> dict[str, inspect.Parameter]:
    fn = getattr(fn, "__wrapped__", fn)
    params = inspect.signature(fn).parameters
    return {
        k: p for k, p in params.items()
        if k != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


class BaseQuantizer(nn.Module):
    quantizer_name = "base"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        orig = cls.__dict__.get("__init__")
        if orig is None:
            return

        @functools.wraps(orig)
        def __init__(self, *args, **kw):
            outermost = type(self) is cls
            if outermost:
                self.__dict__["_pending_config"] = cls._resolve_options(args, kw)
            orig(self, *args, **kw)
            if outermost:
                cfg = self.__dict__.pop("_pending_config")
                cfg.update(self.__dict__.get("_resolved_options", {}))
                self.config = cfg

        cls.__init__ = __init__

    @classmethod
    def option_defaults(cls) -> dict:
        """Every constructor option of this method (base options included) with its default."""
        out: dict = {}
        for klass in reversed(cls.__mro__):
            if klass is nn.Module or not issubclass(klass, BaseQuantizer) or "__init__" not in klass.__dict__:
                continue
            for k, p in _init_params(klass.__dict__["__init__"]).items():
                out[k] = p.default if p.default is not inspect.Parameter.empty else None
        return out

    @classmethod
    def _resolve_options(cls, args, kw) -> dict:
        defaults = cls.option_defaults()
        positional = list(_init_params(cls.__dict__["__init__"]))
        if len(args) > len(positional):
            raise ValueError(f"{cls.quantizer_name!r} quantizer: too many positional arguments")
        given = dict(zip(positional, args))
        for k, v in kw.items():
            if k in given:
                raise ValueError(f"{cls.quantizer_name!r} quantizer: option {k!r} given twice")
            given[k] = v
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            valid = ", ".join(sorted(set(defaults) - {"num_codes", "code_dim"}))
            raise ValueError(
                f"{cls.quantizer_name!r} quantizer: unknown option(s) {unknown}; valid options: {valid}"
            )
        for req in ("num_codes", "code_dim"):
            if req not in given:
                raise ValueError(f"{cls.quantizer_name!r} quantizer: missing required option {req!r}")
        for k, v in given.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{cls.quantizer_name!r} quantizer: option {k!r} must be a finite number, got {v!r}")
        return {"name": cls.quantizer_name, **defaults, **given}

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        *,
        search_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        search_precision: str = "fp32",
        track_usage: bool = False,
        check_finite: bool = True,
        replacement: dict | None = None,
    ):
        super().__init__()
        self.num_codes = _check_positive_int("num_codes (K)", num_codes)
        self.code_dim = _check_positive_int("code_dim (D)", code_dim)
        self.search_chunk_bytes = check_chunk_bytes(search_chunk_bytes)
        self.search_precision = check_precision(search_precision)
        self.track_usage = bool(track_usage)
        self.check_finite = bool(check_finite)
        self.usage = CodeUsage(self.num_codes)
        self.replacer = None
        if replacement is not None:
            from .replacement import CodeReplacer

            if not isinstance(replacement, dict):
                raise ValueError(f"replacement must be a dict of options or None, got {replacement!r}")
            valid = sorted(set(inspect.signature(CodeReplacer.__init__).parameters) - {"self", "num_codes", "code_dim"})
            unknown = sorted(set(replacement) - set(valid))
            if unknown:
                raise ValueError(f"replacement: unknown option(s) {unknown}; valid options: {', '.join(valid)}")
            self.replacer = CodeReplacer(self.num_codes, self.code_dim, **replacement)
        if "config" not in self.__dict__:
            self.config = {"name": self.quantizer_name, "num_codes": num_codes, "code_dim": code_dim}

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

    def on_epoch_end(self, epoch: int) -> None:
        """Per-epoch hook called by the trainer after epoch ``epoch`` (0-based) finished."""
        if self.replacer is not None and self.replacer.every == "epoch":
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
