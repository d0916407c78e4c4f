"""Named experiment grids: ``grid(profile) -> list[TrainConfig]``, registered in ``GRIDS``.

A grid fixes *what* is compared; the profile (``paper_repro.profiles``) fixes the *scale*. Configs
are plain data, so a grid's runs are identified by their config hashes and a sweep can skip what
is already stored.
"""
from __future__ import annotations

from typing import Callable

from ..profiles import get_profile
from ..training.config import TrainConfig, config_hash

GRIDS: dict[str, Callable[[str], list[TrainConfig]]] = {}


def register_grid(name: str):
    def deco(fn):
        if name in GRIDS:
            raise ValueError(f"grid {name!r} is already registered")
        GRIDS[name] = fn
        fn.grid_name = name
        return fn
    return deco


def get_grid(name: str, profile: str, device: str | None = None) -> list[TrainConfig]:
    """The configs of grid ``name`` at ``profile`` (``device`` filled in when given)."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; expected one of: {', '.join(sorted(GRIDS))}")
    prof = get_profile(profile).name
    cfgs = GRIDS[name](prof)
    out = [c.replace(experiment=name, profile=prof, **({"device": device} if device else {}))
           for c in cfgs]
    hs = [config_hash(c) for c in out]
    if len(set(hs)) != len(hs):
        raise ValueError(f"grid {name!r} at profile {prof!r} has duplicate configs")
    return out


def _profile_overrides(profile: str) -> dict:
    """How the profile runs its grids (``Profile.run_settings``: checkpoints, determinism, threads)."""
    return get_profile(profile).run_settings()


@register_grid("first_run")
def first_run(profile: str) -> list[TrainConfig]:
    """Vanilla VQ vs NS-VQ (paper flavour), K = 1024, D = 64, on the profile's data (Fashion-MNIST
    32x32 at ``ci`` / ``gpu``), one run per profile seed."""
    p = get_profile(profile)
    return [TrainConfig.from_profile(p, quantizer=q, num_codes=1024, code_dim=64, seed=s,
                                     **_profile_overrides(p.name))
            for q in ("vq", "nsvq") for s in p.seeds]


# The paper's Tables 2-3 methods -> (quantizer, options). The paper names the baselines but does not
# give their settings; where it is silent the authors' code decides (notes/official-code.md):
# "VQVAE2" is their EMA baseline (decay 0.9995, dead-code threshold 1, rotation trick on) and
# "VQGAN-EMA" [19] is Taming Transformers' EMA quantizer (decay 0.99, no replacement, plain STE),
# which is also this package's `ema` default. For VQGAN-FC the tables' "code dimension" is read as its
# lookup dimension (the l2-normalised space where codes live): lookup_dim = D.
PAPER_METHODS: dict[str, tuple[str, dict]] = {
    "VQGAN-FC": ("fc", {}),
    "VQVAE2": ("ema", {"decay": 0.9995, "dead_code_threshold": 1.0, "rotation_trick": True}),
    "VQGAN-EMA": ("ema", {}),
    "SimVQ": ("simvq", {}),
    "NS-VQ": ("nsvq", {}),
    "TransVQ": ("transvq", {"position_embedding": False}),
}
# The paper prints codebook size "8912" in Tables 2-3; we read it as 8192 (data/paper/README.md).
CODEBOOK_SIZES = {"ci": (64, 1024), "cpu": (64, 1024, 8192), "gpu": (64, 1024, 8192), "paper": (64, 1024, 8192)}
CODE_DIMS = (3, 64)


@register_grid("codebook_size")
def codebook_size(profile: str) -> list[TrainConfig]:
    """Tables 2-3 and Figure 3: the six methods of the paper at codebook sizes 64 / 1024 / 8192
    and code dimensions 3 and 64, one run per profile seed; ``tag`` holds the paper's method name.
    The ``ci`` profile keeps K = 64 and 1024 and trains one epoch (a pipeline check)."""
    p = get_profile(profile)
    extra = {"epochs": 1} if p.name == "ci" else {}
    return [TrainConfig.from_profile(p, quantizer=q, quantizer_options=_options(q, opts, d), num_codes=k,
                                     code_dim=d, seed=s, tag=label, **extra,
                                     **_profile_overrides(p.name))
            for label, (q, opts) in PAPER_METHODS.items()
            for d in CODE_DIMS for k in CODEBOOK_SIZES[p.name] for s in p.seeds]


def _options(quantizer: str, options: dict, code_dim: int) -> dict:
    out = dict(options)
    if quantizer == "fc":
        out.setdefault("lookup_dim", code_dim)
    return out


# Figure 4: vanilla VQ-VAE, K = D = 64, at several batch sizes. The paper does not list the batch
# sizes it tried; learning rate and epochs stay at the profile's values for every batch size.
BATCH_SIZES = {"ci": (4, 16, 64), "cpu": (4, 16, 64), "gpu": (4, 8, 16, 32, 64), "paper": (4, 8, 16, 32, 64)}


@register_grid("batch_size")
def batch_size(profile: str) -> list[TrainConfig]:
    """Figure 4 (Sec. 3.2.2): vanilla ``vq`` with K = D = 64 at each batch size of ``BATCH_SIZES``,
    evaluated after every epoch (the figure shows curves), one run per profile seed."""
    p = get_profile(profile)
    return [TrainConfig.from_profile(p, quantizer="vq", num_codes=64, code_dim=64, batch_size=b,
                                     seed=s, eval_every_epoch=True, **_profile_overrides(p.name))
            for b in BATCH_SIZES[p.name] for s in p.seeds]


# Figure 4 at the same images seen, with the learning rate scaled to the batch: Adam's square-root rule
# (lr x sqrt(batch / the profile's batch); Malladi et al. 2022, "On the SDEs and scaling rules for
# adaptive gradient algorithms"), so a larger batch takes fewer but longer steps over the same epochs.
# The profile's batch keeps the profile's lr: that run is the batch_size grid's (same hash, shared).
def scaled_lr(profile: str, batch_size: int) -> float:
    """``batch_lr``'s learning rate at ``batch_size``: the profile's lr x sqrt(batch / profile batch)."""
    p = get_profile(profile)
    return p.lr * (batch_size / p.batch_size) ** 0.5


@register_grid("batch_lr")
def batch_lr(profile: str) -> list[TrainConfig]:
    """Figure 4 at fixed epochs with the learning rate scaled to the batch size (``scaled_lr``, Adam's
    square-root rule): otherwise the ``batch_size`` grid's configs."""
    return [c.replace(lr=scaled_lr(profile, c.batch_size)) for c in batch_size(profile)]


# The pilot that chooses the ``cpu`` profile (issue: the reproduction two CPU cores afford): four
# methods, K = 1024, D = 64, on the full Fashion-MNIST training split at 1/4 width, evaluated on 2,000
# test images after every epoch (so one 3-epoch run gives the 1-, 2- and 3-epoch numbers), with the
# paper's constant learning rate and with a 500-step warm-up (the first half dead-ended some seeds'
# decoders: the pilot page shows why). Width 1/2 was planned as the next scale; it is not needed,
# since width 1/4 at 3 epochs already discriminates. Every scale field is set here, not taken from the
# profile, so the pilot's records keep their hashes whatever the ``cpu`` profile becomes.
PILOT_WIDTHS = (0.25,)
PILOT_WARMUPS = (0, 500)
PILOT_METHODS = (("vq", {}), ("simvq", {}), ("nsvq", {}), ("nsvq", {"flavor": "official"}))


def pilot_tag(quantizer: str, options: dict, width: float, warmup: int) -> str:
    """The pilot's run label, e.g. ``"nsvq-official w0.25"`` or ``"vq w0.25 warm-up 500"``."""
    return (f"{quantizer}{'-official' if options else ''} w{width:g}"
            + (f" warm-up {warmup}" if warmup else ""))


@register_grid("pilot")
def pilot(profile: str) -> list[TrainConfig]:
    """Pilot for the cpu profile: {vq, simvq, nsvq, nsvq official} at width 1/4, K = 1024, D = 64,
    full training split, 3 epochs evaluated after each, without and with a 500-step learning-rate
    warm-up, 2 seeds (defined at cpu only)."""
    p = get_profile(profile)
    if p.name != "cpu":
        return []
    return [TrainConfig.from_profile(p, dataset="fashion_mnist", image_size=32, quantizer=q, quantizer_options=dict(opts), num_codes=1024, code_dim=64,
                                     width=w, train_images=None, eval_images=2000, epochs=3, batch_size=16,
                                     lr=5e-4, warmup_steps=wu, seed=s, eval_every_epoch=True, fd_resize=None,
                                     eval_metrics=["usage", "psnr", "ssim", "lpips"],
                                     checkpoint_every=500, deterministic=True, num_threads=1,
                                     channels_last=bool(wu), tag=pilot_tag(q, opts, w, wu))
            for w in PILOT_WIDTHS for wu in PILOT_WARMUPS for s in (0, 1) for q, opts in PILOT_METHODS]


#: stage (c)'s GAN weighting: VQGAN's (taming's ImageNet config: disc_weight 0.8, adaptive) and a fixed
#: weight of 0.1 (the config's defaults)
STAGED_GAN = {"adaptive": {"refine_gan_weight": 0.8, "refine_gan_weighting": "adaptive"},
              "fixed": {"refine_gan_weight": 0.1, "refine_gan_weighting": "fixed"}}


# The follow-up paper's staged training (seeds/001): it "first helps the codebook track encoder drift
# during early training, then freezes the encoder to consolidate the codebook under a fixed latent
# geometry, and finally reintroduces adversarial refinement". Here: NS-VQ, then + (a) dead-code
# replacement from a reservoir, + (b) the encoder frozen from the second-to-last epoch on, + (c) the
# adversarial refinement (PatchGAN hinge + LPIPS) in the last epoch, the encoder still frozen; SimVQ
# beside them (the follow-up's comparison). Stages are relative to the profile's epochs (3 at cpu:
# epoch 0 trains everything, 1 consolidates, 2 refines); with 2 epochs (ci) the two stages share the last.
def _staged_arms(epochs: int) -> dict[str, tuple[str, dict, dict]]:
    if epochs < 2:    # one epoch would freeze the encoder before it ever trained
        raise ValueError(f"the staged schedule needs at least 2 epochs, got {epochs}")
    last = max(epochs - 1, 0)
    freeze = max(epochs - 2, min(1, last))
    repl = {"replacement": {"threshold": 1.0, "reservoir_size": 16384, "every": "epoch"}}
    frozen = {"freeze_encoder_at_epoch": freeze, "refine_from_epoch": last}
    return {
        "SimVQ": ("simvq", {}, {}),
        "NS-VQ": ("nsvq", {}, {}),
        "NS-VQ +a": ("nsvq", repl, {}),
        "NS-VQ +a+b": ("nsvq", repl, {"freeze_encoder_at_epoch": freeze}),
        # (c) as VQGAN weights its GAN term: disc_weight 0.8 x the adaptive ratio of last-layer gradients
        "NS-VQ +a+b+c": ("nsvq", repl, {**frozen, **STAGED_GAN["adaptive"]}),
        # the same with a fixed GAN weight (the rule this grid first ran): what the adaptive weight does
        "NS-VQ +a+b+c (fixed)": ("nsvq", repl, {**frozen, **STAGED_GAN["fixed"]}),
    }


STAGED_SIZES = (1024, 8192)


@register_grid("staged")
def staged(profile: str) -> list[TrainConfig]:
    """Follow-up paper's staged training: SimVQ, NS-VQ, + replacement (a), + the encoder frozen from
    the second-to-last epoch on (b; from the last with 2 epochs), + adversarial refinement in the last
    epoch (c; VQGAN's adaptive GAN weight, and a fixed-weight arm beside it); K = 1024 and 8192,
    D = 64, profile seeds."""
    p = get_profile(profile)
    return [TrainConfig.from_profile(p, quantizer=q, quantizer_options=dict(opts), num_codes=k, code_dim=64,
                                     seed=s, tag=arm, **stage, **_profile_overrides(p.name))
            for arm, (q, opts, stage) in _staged_arms(p.epochs).items()
            for k in STAGED_SIZES for s in p.seeds]


# -- mechanisms (why each method works or fails); every run carries the training probes ------------------
def _probed(p) -> dict:
    """The grid-run settings of profile ``p`` plus its training probes (``Profile.probe_every``)."""
    return {**_profile_overrides(p.name), "probe_every": p.probe_every}


def _mechanism_sizes(profile: str) -> tuple[int, ...]:
    """K of the mechanism grids: 1024 and 8192 (``ci``: 1024 only, a pipeline check)."""
    return (1024,) if get_profile(profile).name == "ci" else (1024, 8192)


# NS-VQ ablation: which switch of NS-VQ does what. The authors' released config runs with the kernel
# off and only the modified STE on; the paper's text has both; "relative" sets 2 sigma^2 from the
# latents' scale at initialisation (a departure of ours, named on the paper-vs-code page).
NSVQ_ARMS: dict[str, dict] = {
    "released config (kernel off, modified STE)": {"kernel": False},
    "paper flavour": {},
    "official flavour": {"flavor": "official"},
    "kernel, plain STE": {"modified_ste": False},
    "Supp. 10 (kernel in STE)": {"kernel_in_ste": True},
    "2 sigma^2 = 0.1": {"kernel_width": 0.1},
    "2 sigma^2 = 10": {"kernel_width": 10.0},
    "2 sigma^2 relative (ours)": {"kernel_width_rule": "relative"},
}


@register_grid("nsvq_ablation")
def nsvq_ablation(profile: str) -> list[TrainConfig]:
    """NS-VQ's switches one at a time (``NSVQ_ARMS``), K = 1024 and 8192, D = 64, profile seeds, with
    training probes (the kernel's weight mass per latent over training)."""
    p = get_profile(profile)
    return [TrainConfig.from_profile(p, quantizer="nsvq", quantizer_options=dict(opts), num_codes=k,
                                     code_dim=64, seed=s, tag=arm, **_probed(p))
            for arm, opts in NSVQ_ARMS.items() for k in _mechanism_sizes(p.name) for s in p.seeds]


# TransVQ diagnosis (Sec. 3.4 vs this implementation): the paper's map (the default), the authors'
# code's map (+ a learned position embedding), the paper's MLP mapper, the audit's first candidate fix
# (data/notes/transvq_audit.md: the mapped codebook scaled by D**-0.5 = 0.125 at D = 64, so that it
# starts at SimVQ's scale; a departure of ours); SimVQ beside them (its linear map keeps many codes at
# the same scale). Options are spelled out so a record says which map it trained.
TRANSVQ_ARMS: dict[str, tuple[str, dict]] = {
    "TransVQ (paper)": ("transvq", {"position_embedding": False}),
    "TransVQ + position embedding (authors' code)": ("transvq", {"position_embedding": True}),
    "TransVQ, MLP mapper": ("transvq", {"mapper": "mlp"}),
    "TransVQ, codebook x 1/8 (ours)": ("transvq", {"position_embedding": False, "codebook_scale": 0.125}),
    "SimVQ": ("simvq", {}),
}


@register_grid("transvq_diagnosis")
def transvq_diagnosis(profile: str) -> list[TrainConfig]:
    """TransVQ variants (``TRANSVQ_ARMS``) at K = 1024, D = 64, profile seeds, with training probes
    (mapped codebook spread and rank, the attention's effective rank)."""
    p = get_profile(profile)
    return [TrainConfig.from_profile(p, quantizer=q, quantizer_options=dict(opts), num_codes=1024, code_dim=64,
                                     seed=s, tag=arm, **_probed(p))
            for arm, (q, opts) in TRANSVQ_ARMS.items() for s in p.seeds]


# Figure 4 without the step-count confound: the same number of optimiser steps for every batch size
# (the steps batch 16 takes in the profile's epochs), so batch 64 sees 16x the images of batch 4.
def fixed_steps(profile: str) -> int:
    """Optimiser steps of every ``batch_steps`` run: batch 16's steps over the profile's epochs."""
    from math import ceil

    p = get_profile(profile)
    return p.epochs * ceil(_train_images(p) / p.batch_size)


def _train_images(p) -> int:
    """Training images of profile ``p``: its ``train_images``, else the size of its data set's training
    split (Fashion-MNIST 60,000; CelebA-HQ: 75 % of its 30,000 images, the authors' split)."""
    if p.train_images is not None:
        return p.train_images
    if p.dataset == "fashion_mnist":
        from ..data.fashion_mnist import SPLIT_SIZE
        return SPLIT_SIZE["train"]
    if p.dataset == "celeba_hq":
        from ..data.folders import CELEBA_HQ_IMAGES, celeba_split
        return len(celeba_split(range(CELEBA_HQ_IMAGES), "train"))
    raise ValueError(f"no training-split size known for data set {p.dataset!r}")


@register_grid("batch_steps")
def batch_steps(profile: str) -> list[TrainConfig]:
    """Figure 4 at a fixed number of optimiser steps: vanilla ``vq``, K = D = 64, each batch size of
    ``BATCH_SIZES``, ``fixed_steps(profile)`` steps (epochs raised to cover them), probes for the
    curves over steps, profile seeds."""
    from math import ceil

    # epochs = ceil(steps / ceil(n / b)); the sampler drops each epoch's last partial batch, so where
    # b does not divide n the last epoch can end a few steps short of the cap (cpu, batch 64: 12 x 937
    # = 11,244 of 11,250). Kept as committed (a fix would change those runs' config hashes for a
    # 0.05 % difference); the caption names the steps each batch size took.
    p = get_profile(profile)
    steps = fixed_steps(p.name)
    n = _train_images(p)
    return [TrainConfig.from_profile(p, quantizer="vq", num_codes=64, code_dim=64, batch_size=b,
                                     epochs=ceil(steps / ceil(n / b)), max_steps=steps, seed=s,
                                     **{**_probed(p), "probe_every": max(1, steps // 30)})
            for b in BATCH_SIZES[p.name] for s in p.seeds]


# Replacement across methods: the follow-up paper's dead-code replacement (reservoir of recent latents,
# threshold 1, once per epoch) switched on for vq, ema, nsvq, simvq at K = 1024, D = 64. The "off" arms
# of ema, nsvq and simvq are the codebook_size grid's VQGAN-EMA, NS-VQ and SimVQ runs (same configs,
# not run twice); plain vq has no run there, so its off arm is here.
REPLACEMENT = {"threshold": 1.0, "reservoir_size": 16384, "every": "epoch"}
REPLACEMENT_METHODS = ("vq", "ema", "nsvq", "simvq")
REPLACEMENT_OFF_IN_CODEBOOK_SIZE = {"ema": "VQGAN-EMA", "nsvq": "NS-VQ", "simvq": "SimVQ"}


@register_grid("replacement")
def replacement(profile: str) -> list[TrainConfig]:
    """Dead-code replacement on for {vq, ema, nsvq, simvq} (and vq without it), K = 1024, D = 64."""
    p = get_profile(profile)
    arms = [("vq", {})] + [(q, {"replacement": dict(REPLACEMENT)}) for q in REPLACEMENT_METHODS]
    return [TrainConfig.from_profile(p, quantizer=q, quantizer_options=opts, num_codes=1024, code_dim=64,
                                     seed=s, tag=f"{q}{' + replacement' if opts else ''}",
                                     **_profile_overrides(p.name))
            for q, opts in arms for s in p.seeds]


# Causes of collapse (Zhao et al., seed 003, vs the main paper): initialisation (uniform +-1/K, the
# VQ-VAE default, vs k-means on the untrained encoder's latents of the first training images) x backbone
# width x method, with the probes measuring token collapse (usage), the latents' spread over directions
# (participation ratio; seed 003's "embedding collapse" is a collapse of the latents) and drift (churn)
# on the same runs.
# SimVQ has no k-means init (its codebook is a frozen random base under a learned map): uniform only.
CAUSE_WIDTHS = {"ci": (0.25,), "cpu": (0.25, 0.5), "gpu": (0.25, 0.5, 1.0), "paper": (0.25, 0.5, 1.0)}
CAUSE_ARMS = (("vq", "uniform"), ("vq", "kmeans"), ("nsvq", "uniform"), ("nsvq", "kmeans"), ("simvq", None))
#: the k-means arms' data: the untrained encoder's latents of the first 256 training images (16,384
#: latents at 32x32 for K = 1024; the first batch alone would give exactly K, and Lloyd's algorithm
#: would only copy them)
CAUSE_KMEANS_IMAGES = 256


def _cause_init(init: str | None) -> dict:
    if init is None:
        return {}
    return {"init": init, **({"kmeans_images": CAUSE_KMEANS_IMAGES} if init == "kmeans" else {})}


@register_grid("causes")
def causes(profile: str) -> list[TrainConfig]:
    """Init x encoder width x {vq, nsvq, simvq}, K = 1024, D = 64, profile seeds, with probes."""
    p = get_profile(profile)
    return [TrainConfig.from_profile(p, quantizer=q, quantizer_options=_cause_init(init),
                                     num_codes=1024, code_dim=64, width=w, seed=s,
                                     tag=f"{q}{f' {init} init' if init else ''} w{w:g}", **_probed(p))
            for w in CAUSE_WIDTHS[p.name] for q, init in CAUSE_ARMS for s in p.seeds]


# Table 6 (Supp. 12): the six methods on the Taming-style backbone (Table 5, attention-free, f4) with
# the Supp. 12 recipe: batch 12, Adam (0.5, 0.9), base lr 4.5e-6 x batch 12 = 5.4e-5 (Taming's
# convention; the authors' config trains at 5.4e-5), MSE + LPIPS, 4 epochs; NS-VQ and TransVQ as in
# Sec. 4. Where the paper is silent the authors' ImageNet code decides: a constant learning rate and no
# gradient clipping (Taming / LDM), per-method K / D (vanilla 1,024 / 3, NS-VQ 8,192 / 3, SimVQ
# 8,192 / 64, TransVQ 8,192 / 128). The code has no config for VQGAN-FC and VQGAN-EMA: they get
# K = 8,192, D = 3 here (ours; named on the page). "VQGAN" is Taming's vanilla quantizer (``vq``).
TABLE6_METHODS: dict[str, tuple[str, dict, int, int]] = {
    "VQGAN": ("vq", {}, 1024, 3),
    "VQGAN-FC": ("fc", {"lookup_dim": 3}, 8192, 3),
    "VQGAN-EMA": ("ema", {}, 8192, 3),
    "SimVQ": ("simvq", {}, 8192, 64),
    "NS-VQ": ("nsvq", {}, 8192, 3),
    "TransVQ": ("transvq", {"position_embedding": False}, 8192, 128),
}
# The loss: the paper's (MSE + LPIPS; LPIPS network not stated: the package's AlexNet LPIPS, as its
# LPIPS metric) and the authors' code's (L1 + LPIPS-VGG + hinge GAN from the first step at 0.75 x
# LDM's adaptive weight, the ratio of last-layer gradient norms: refine_gan_weighting="adaptive"). Both
# run from epoch 0 through the trainer's refinement-stage terms (training/refine.py).
TABLE6_RECIPES: dict[str, dict] = {
    "paper": {"recon_loss": "mse", "refine_from_epoch": 0, "refine_lpips_weight": 1.0,
              "refine_gan_weight": 0.0},
    "authors' code": {"recon_loss": "l1", "refine_from_epoch": 0, "refine_lpips_weight": 1.0,
                      "refine_lpips_net": "vgg", "refine_gan_weight": 0.75, "refine_gan_weighting": "adaptive"},
}
TABLE6_OPTIMISER = {"batch_size": 12, "lr": 4.5e-6 * 12, "betas": [0.5, 0.9], "lr_gamma": 1.0, "grad_clip": None,
                    "warmup_steps": 0}
# Scale per profile. ``paper``: ImageNet-1K 256 x 256 (needs the images: README), full width, 4 epochs.
# ``gpu``: Fashion-MNIST 32 x 32 (60k), full width, 4 epochs. ``ci``: the profile's 2,048 images, one
# epoch, 1/4 width (a pipeline check). Not defined at ``cpu``: the ci records train at ~50 images/s on
# one core with the paper's loss and ~22 with the code's (TransVQ: 18 / 12), against ~330 for a cpu-profile
# Table-1 run; 4 epochs of Fashion-MNIST would take 1.3-5.5 h a run, ~90 CPU-hours for the 36 runs.
TABLE6_SCALE = {"ci": {"epochs": 1}, "gpu": {"epochs": 4},
                "paper": {"dataset": "imagenet", "image_size": 256, "epochs": 4}}


@register_grid("table6")
def table6(profile: str) -> list[TrainConfig]:
    """Table 6 (Supp. 12): ``TABLE6_METHODS`` on the Taming backbone x ``TABLE6_RECIPES``, with
    Supp. 12's optimiser, at the scale of ``TABLE6_SCALE`` (no runs at ``cpu``); the tag is
    "method | recipe"."""
    p = get_profile(profile)
    if p.name not in TABLE6_SCALE:
        return []
    return [TrainConfig.from_profile(p, backbone="taming", quantizer=q, quantizer_options=dict(opts), num_codes=k,
                                     code_dim=d, seed=s, tag=f"{label} | {recipe}", **TABLE6_OPTIMISER,
                                     **TABLE6_RECIPES[recipe], **TABLE6_SCALE[p.name], **_profile_overrides(p.name))
            for recipe in TABLE6_RECIPES for label, (q, opts, k, d) in TABLE6_METHODS.items() for s in p.seeds]
