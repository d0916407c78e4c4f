"""Training configuration: plain data (JSON), validated early, with a stable content hash.

The defaults follow the paper's Sec. 4 protocol (Adam, lr 5e-4, batch 16, MSE reconstruction) and the
authors' code where the paper is silent (ExponentialLR gamma 0.995 per epoch, gradient clipping 1.0,
weight decay 0). Configs are data, never code: ``TrainConfig.from_dict`` accepts only known keys.

``config_hash(cfg)`` is the first 12 hex digits of the SHA-256 of the canonical JSON of every field
that can change a result. Bookkeeping fields (device, where checkpoints go, how often, progress bars,
thread counts, data location) are excluded, so the same experiment run on another machine, or resumed
with a different checkpoint interval, keeps its hash.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as _F

from ..backbones import BACKBONES as _BACKBONES, INPUT_MAPPINGS as _INPUT_MAPPINGS
from ..metrics.weights import NETS as _LPIPS_NETS
from ..quantizers import registered_quantizers

#: Fields that never change a result and are left out of ``config_hash``.
BOOKKEEPING_FIELDS = frozenset({
    "device", "checkpoint_every", "experiment", "profile", "progress", "num_threads", "data_root",
    "tag", "nonfinite_check_every", "channels_last",
})

EVAL_METRICS = ("usage", "psnr", "ssim", "lpips", "fd")
FLOAT32_MAX = 3.4028234663852886e38
AMP_MODES = (None, "bf16")
AUGMENTS = ("none", "official")
#: the reconstruction term by ``recon_loss`` (recon, x in [0, 1]; mean over all pixels): the paper's MSE;
#: L1 is the authors' ImageNet code (Table 6). The trainer reads the loss from here: one list.
RECON_LOSSES = {"mse": _F.mse_loss, "l1": _F.l1_loss}
LPIPS_NETS = tuple(_LPIPS_NETS)               # the LPIPS loss term's network (refine stage)
GAN_WEIGHTINGS = ("fixed", "adaptive")          # refine stage: fixed weight, or x VQGAN's adaptive ratio
# names derived from their registries (one list each, kept where the things are defined)
BACKBONES = _BACKBONES
INPUT_MAPPINGS = _INPUT_MAPPINGS
QUANTIZERS = tuple(registered_quantizers())


@dataclass
class TrainConfig:
    """One training run. Every field is a JSON primitive (or a list / dict of them)."""

    # data
    dataset: str = "fashion_mnist"
    image_size: int = 32
    train_images: int | None = None          # None: the whole training split
    eval_images: int | None = None           # None: the whole evaluation split
    data_seed: int = 0                       # which subset train_images / eval_images select
    eval_split: str = "val"                  # fashion_mnist "val" = its 10k test images
    augment: str = "none"                    # "none" | "official" (CelebA-HQ train augmentation)
    # model
    backbone: str = "table1"
    width: float = 1.0
    backbone_options: dict = field(default_factory=dict)
    input_mapping: str = "symmetric"         # VQAutoencoder: "symmetric" ([-1,1] in) | "official"
    quantizer: str = "vq"
    quantizer_options: dict = field(default_factory=dict)
    num_codes: int = 1024
    code_dim: int = 64
    # optimisation (paper Sec. 4; authors' code for gamma / clipping)
    recon_loss: str = "mse"                  # "mse" (paper Sec. 4, Supp. 12) | "l1" (authors' ImageNet code)
    batch_size: int = 16
    epochs: int = 2
    max_steps: int | None = None             # stop after this many optimiser steps (all epochs)
    lr: float = 5e-4
    betas: tuple = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_gamma: float = 0.995                  # ExponentialLR, stepped once per epoch
    grad_clip: float | None = 1.0            # max global L2 norm; None disables
    # linear learning-rate warm-up over the first N optimiser steps (0: none, as in the paper and the
    # authors' code). The ``cpu`` profile uses it: without it, at 1/4 width, runs whose codes collapse
    # to one in the first steps drive the decoder's Tanh into saturation and never recover (pilot page)
    warmup_steps: int = 0
    amp: str | None = None                   # None (fp32) or "bf16" autocast
    freeze_encoder_at_epoch: int | None = None  # follow-up paper: stage-wise encoder freezing
    # follow-up paper's adversarial refinement (training/refine.py): from this epoch on, + LPIPS and a
    # PatchGAN hinge loss, weighted by refine_gan_weight ("fixed") or by it times VQGAN's adaptive ratio
    # of last-layer gradient norms ("adaptive")
    refine_from_epoch: int | None = None
    refine_gan_weight: float = 0.1
    refine_gan_weighting: str = "fixed"      # "fixed" | "adaptive" (VQGAN, taming's calculate_adaptive_weight)
    refine_lpips_weight: float = 1.0
    refine_lpips_net: str = "alex"           # LPIPS network of that term: "alex" | "vgg" (authors' ImageNet code)
    disc_channels: int = 64
    disc_layers: int = 3
    seed: int = 0
    deterministic: bool = True               # torch.use_deterministic_algorithms on CUDA
    # evaluation
    eval_metrics: tuple = EVAL_METRICS
    eval_batch_size: int = 256
    fd_resize: int | None = 224              # FD-VGG16 proxy input size (None: native resolution)
    num_samples: int = 8                     # reconstructions saved beside the record (PNG)
    eval_every_epoch: bool = False           # also evaluate after each epoch (curves; record["epochs"][i]["eval"])
    # training probes (training/probes.py): latent rank, drift, codebook state every N steps and at each
    # epoch's end, on the first probe_images evaluation images (0: off); record["probes"]
    probe_every: int = 0
    probe_images: int = 256
    # bookkeeping (not hashed)
    device: str = "cpu"
    checkpoint_every: int | None = 500       # optimiser steps; also at every epoch end
    nonfinite_check_every: int | None = None  # None: every step on CPU, every 25 on CUDA
    experiment: str | None = None
    profile: str | None = None
    tag: str | None = None
    progress: bool | None = None             # None: only when stderr is a tty
    num_threads: int | None = None
    data_root: str | None = None
    # NHWC memory layout for the convolutions: faster on CPUs (benchmarks/bench_training.py), the
    # same maths with other float kernels (a bookkeeping field, like the thread count)
    channels_last: bool = False

    def __post_init__(self):
        self.validate()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise TypeError(f"a config must be a JSON object (dict), got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path) -> "TrainConfig":
        from pathlib import Path
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {p} is not valid JSON: {e}") from None
        return cls.from_dict(d)

    @classmethod
    def from_profile(cls, profile, **overrides) -> "TrainConfig":
        """Defaults of a named profile (``paper_repro.profiles``), then ``overrides``."""
        from ..profiles import get_profile

        p = get_profile(profile)
        d = dict(dataset=p.dataset, image_size=p.image_size, width=p.backbone_width,
                 train_images=p.train_images, eval_images=p.eval_images, epochs=p.epochs,
                 batch_size=p.batch_size, lr=p.lr, seed=p.seeds[0], profile=p.name,
                 fd_resize=getattr(p, "fd_resize", 224), warmup_steps=p.warmup_steps,
                 backbone=p.backbone)
        d.update(overrides)
        return cls.from_dict(d)

    def replace(self, **changes) -> "TrainConfig":
        d = self.to_dict()
        d.update(changes)
        return TrainConfig.from_dict(d)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(d["betas"])
        d["eval_metrics"] = list(d["eval_metrics"])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every field (clear errors for bad input) and canonicalise numbers and metric order."""
        self._validate_integers()
        self._validate_numbers()
        self._validate_names()

    def _validate_integers(self) -> None:
        def pos_int(name, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"config field {name!r} must be a positive integer"
                                 f"{' or null' if allow_none else ''}, got {v!r}")

        def nonneg_int(name, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer{' or null' if allow_none else ''}, "
                                 f"got {v!r}")

        for n in ("image_size", "num_codes", "code_dim", "batch_size", "epochs", "eval_batch_size",
                  "disc_channels", "disc_layers", "probe_images"):
            pos_int(n)
        for n in ("train_images", "eval_images", "max_steps", "fd_resize", "checkpoint_every", "num_threads",
                  "nonfinite_check_every"):
            pos_int(n, allow_none=True)
        for n in ("num_samples", "data_seed", "seed", "warmup_steps", "probe_every"):
            nonneg_int(n)
        for n in ("refine_from_epoch", "freeze_encoder_at_epoch"):
            nonneg_int(n, allow_none=True)
        for n in ("deterministic", "eval_every_epoch", "channels_last"):
            if not isinstance(getattr(self, n), bool):
                raise ValueError(f"config field {n!r} must be true or false, got {getattr(self, n)!r}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be true, false or null, got {self.progress!r}")

    def _validate_numbers(self) -> None:
        for n in ("refine_gan_weight", "refine_lpips_weight"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"config field {n!r} must be a finite number >= 0, got {v!r}")
            setattr(self, n, float(v))
        # numbers: coerce ints to floats so that 1 and 1.0 hash alike
        for n in ("width", "lr", "weight_decay", "lr_gamma"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"config field {n!r} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"config field {n!r} must be a finite number, got {v!r}")
            if abs(v) > FLOAT32_MAX:
                raise ValueError(f"config field {n!r} = {v!r} is beyond float32's range ({FLOAT32_MAX:.3g}); "
                                 f"the optimiser computes in float32")
            setattr(self, n, float(v))
        if not self.width > 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma}")
        if self.grad_clip is not None:
            if isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float)) \
                    or not self.grad_clip > 0 or not math.isfinite(self.grad_clip):
                raise ValueError(f"grad_clip must be a positive number or null, got {self.grad_clip!r}")
            self.grad_clip = float(self.grad_clip)
        if not isinstance(self.betas, (list, tuple)):
            raise ValueError(f"betas must be a list of two numbers in [0, 1), got {self.betas!r}")
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(float(b) for b in betas)
        if self.refine_from_epoch is not None and self.refine_gan_weight > 0:
            # the PatchGAN halves the image disc_layers times, then two 4x4 convolutions need >= 3 pixels
            least = 3 * 2 ** self.disc_layers
            if self.image_size < least:
                raise ValueError(f"the refinement stage's discriminator (disc_layers={self.disc_layers}) needs images "
                                 f"of at least {least}x{least} (3 * 2**disc_layers), got image_size={self.image_size}; "
                                 f"use fewer disc_layers or refine_gan_weight=0")

    def _validate_names(self) -> None:
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; expected one of {BACKBONES}")
        if not isinstance(self.quantizer, str) or not self.quantizer:
            raise ValueError(f"quantizer must be a name, got {self.quantizer!r}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.quantizer!r}; expected one of {QUANTIZERS}")
        if not isinstance(self.quantizer_options, dict):
            raise ValueError(f"quantizer_options must be a JSON object, got {self.quantizer_options!r}")
        _check_json(self.quantizer_options, "quantizer_options")
        if not isinstance(self.backbone_options, dict):
            raise ValueError(f"backbone_options must be a JSON object, got {self.backbone_options!r}")
        _check_json(self.backbone_options, "backbone_options")
        if self.recon_loss not in RECON_LOSSES:
            raise ValueError(f"recon_loss must be one of {tuple(RECON_LOSSES)}, got {self.recon_loss!r}")
        if self.refine_gan_weighting not in GAN_WEIGHTINGS:
            raise ValueError(f"refine_gan_weighting must be one of {GAN_WEIGHTINGS}, got {self.refine_gan_weighting!r}")
        if self.refine_lpips_net not in LPIPS_NETS:
            raise ValueError(f"refine_lpips_net must be one of {LPIPS_NETS}, got {self.refine_lpips_net!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {self.augment!r}")
        if self.input_mapping not in INPUT_MAPPINGS:
            raise ValueError(f"input_mapping must be one of {INPUT_MAPPINGS}, got {self.input_mapping!r}")
        for n in ("dataset", "eval_split"):
            if not isinstance(getattr(self, n), str) or not getattr(self, n):
                raise ValueError(f"config field {n!r} must be a non-empty string, got {getattr(self, n)!r}")
        if isinstance(self.eval_metrics, str) or not isinstance(self.eval_metrics, (list, tuple)):
            raise ValueError(f"eval_metrics must be a list such as {list(EVAL_METRICS)}, got {self.eval_metrics!r}")
        metrics = tuple(self.eval_metrics)
        bad = [m for m in metrics if m not in EVAL_METRICS]
        if bad:
            raise ValueError(f"unknown eval metric(s) {bad}; expected a subset of {EVAL_METRICS}")
        self.eval_metrics = tuple(m for m in EVAL_METRICS if m in metrics)  # canonical order
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.data_root is not None and (not isinstance(self.data_root, str) or not self.data_root):
            raise ValueError(f"data_root must be a folder path or null, got {self.data_root!r}")


def _check_json(v: Any, where: str) -> None:
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{where}: {v!r} is not a finite number (JSON has no NaN or Infinity)")
    if v is None or isinstance(v, (bool, int, float, str)):
        return
    if isinstance(v, (list, tuple)):
        for x in v:
            _check_json(x, where)
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings, got {k!r}")
            _check_json(x, where)
        return
    raise ValueError(f"{where}: {v!r} ({type(v).__name__}) is not JSON data")


#: Result-relevant fields added after records existed, with their defaults: left out of the hash
#: while at the default, so adding a field never changes (orphans) the hash of an existing config.
ADDED_FIELD_DEFAULTS = {"eval_every_epoch": False, "refine_from_epoch": None, "refine_gan_weight": 0.1,
                        "refine_lpips_weight": 1.0, "disc_channels": 64, "disc_layers": 3,
                        "warmup_steps": 0, "probe_every": 0, "probe_images": 256,
                        "recon_loss": "mse", "refine_lpips_net": "alex", "refine_gan_weighting": "fixed"}


def hashed_fields(cfg: TrainConfig) -> dict:
    """The part of the config that determines a result (what ``config_hash`` hashes)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in BOOKKEEPING_FIELDS
            and not (k in ADDED_FIELD_DEFAULTS and v == ADDED_FIELD_DEFAULTS[k])}


def canonical_json(d: dict) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(cfg: TrainConfig | dict) -> str:
    """Stable 12-hex-digit hash of the result-relevant fields (canonical JSON, SHA-256)."""
    if isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    return hashlib.sha256(canonical_json(hashed_fields(cfg)).encode()).hexdigest()[:12]
