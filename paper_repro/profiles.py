"""Run-size profiles, defined once for the whole package.

Every experiment notebook has ``profile`` and ``device`` parameters. A profile fixes the *scale* of
a run (data, resolution, backbone width, epochs, seeds); each experiment grid maps the same profile
to its configs.

- ``ci``: seconds on a 2-core CPU. Fashion-MNIST 32x32 subset, narrow backbone. Proves the pipeline
  and catches regressions; its numbers are *not* a reproduction.
- ``cpu``: what two CPU cores afford running in the background for hours: full Fashion-MNIST
  training split, a narrow backbone, a few epochs, three seeds (chosen from the ``pilot`` grid).
- ``gpu``: the scaled reproduction on one GPU: full Fashion-MNIST 32x32 (the offline stand-in for
  CelebA-HQ), the paper's backbone width, several seeds.
- ``paper``: the paper's own protocol: CelebA-HQ (needs the images; see README), Table-1 backbone,
  batch 16, Adam 5e-4, 40 epochs.
- ``auto`` (book builds): for an experiment grid, the committed records of the highest-scale
  profile that has any (``paper`` > ``gpu`` > ``cpu`` > ``ci``, by ``Profile.rank``); a book build
  never trains. For the toy demos and proof walkthroughs (computed on every build) it means ``ci``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    dataset: str                 # key of paper_repro.data
    image_size: int
    backbone_width: float        # multiplier on the paper's channel counts (1.0 = paper)
    train_images: int | None     # None: the whole training split
    eval_images: int | None      # None: the whole evaluation split
    epochs: int
    batch_size: int
    lr: float
    seeds: tuple[int, ...]
    # Scale order for ``auto`` (higher = closer to the paper): ci 0 < cpu 1 < gpu 2 < paper 3.
    rank: int = 0
    backbone: str = "table1"     # paper_repro.backbones name ("taming" for the ImageNet backbone, Table 5)
    # linear learning-rate warm-up steps (TrainConfig.warmup_steps; 0 = none, the paper's recipe)
    warmup_steps: int = 0
    # how the profile's grid runs are executed (experiments.grids applies them): checkpoint
    # interval, deterministic algorithms (hashed), CPU threads per run, NHWC convolutions
    checkpoint_every: int = 1000
    deterministic: bool = False
    num_threads: int | None = None
    channels_last: bool = False
    # Does a verdict at this profile count as evidence about the paper's claims? (``ci``: no, its
    # runs are pipeline checks; see paper_repro.verdict.)
    evidence: bool = True
    toy_seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4))
    # Resize before the VGG16 features of FD-VGG16: None keeps the native size (fast, named
    # "FD-VGG16@native"); 224 is the ImageNet input size (named "FD-VGG16").
    fd_resize: int | None = 224
    # training probes of the grids that study mechanisms (TrainConfig.probe_every): about ten per
    # epoch of batch 16 (0: none)
    probe_every: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def run_settings(self) -> dict:
        """The TrainConfig fields a grid run of this profile gets besides its scale."""
        return {"checkpoint_every": self.checkpoint_every, "deterministic": self.deterministic,
                **({"num_threads": self.num_threads} if self.num_threads else {}),
                **({"channels_last": True} if self.channels_last else {})}


PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci",
        description="CPU smoke scale: Fashion-MNIST 32x32, 2,048 training images, 1/4-width backbone",
        dataset="fashion_mnist", image_size=32, backbone_width=0.25,
        train_images=2048, eval_images=512, epochs=2, batch_size=16, lr=5e-4, seeds=(0,),
        fd_resize=None, rank=0, evidence=False,
        # one CPU thread: as fast for these tiny ops, and robust to shared cores
        checkpoint_every=200, deterministic=True, num_threads=1, probe_every=16,
    ),
    "cpu": Profile(
        name="cpu",
        description="what two CPU cores afford in the background: Fashion-MNIST 32x32 (60k train / 2,000 "
                    "eval), 1/4-width backbone, 3 epochs, 500-step learning-rate warm-up, 3 seeds (the "
                    "cheapest scale of the pilot grid that discriminates)",
        dataset="fashion_mnist", image_size=32, backbone_width=0.25,
        train_images=None, eval_images=2000, epochs=3, batch_size=16, lr=5e-4, seeds=(0, 1, 2),
        fd_resize=None, rank=1, warmup_steps=500,
        # two 1-thread runs at once, NHWC convolutions: the fastest measured sweep
        deterministic=True, num_threads=1, channels_last=True, probe_every=375,
    ),
    "gpu": Profile(
        name="gpu",
        description="one-GPU reproduction: Fashion-MNIST 32x32 (60k train / 10k eval), paper backbone",
        dataset="fashion_mnist", image_size=32, backbone_width=1.0,
        train_images=None, eval_images=None, epochs=10, batch_size=16, lr=5e-4, seeds=(0, 1, 2),
        rank=2, probe_every=375,
    ),
    "paper": Profile(
        name="paper",
        description="the paper's protocol: CelebA-HQ, Table-1 backbone, batch 16, Adam 5e-4, 40 epochs",
        dataset="celeba_hq", image_size=64, backbone_width=1.0,
        train_images=None, eval_images=None, epochs=40, batch_size=16, lr=5e-4, seeds=(1265,),
        rank=3, probe_every=200,
    ),
}

#: Pseudo-profile used by the book build: the highest-scale profile with committed records.
AUTO = "auto"


def profiles_by_scale() -> list[str]:
    """Profile names from the highest scale (closest to the paper) to the lowest."""
    return sorted(PROFILES, key=lambda n: -PROFILES[n].rank)


def get_profile(name: str | Profile) -> Profile:
    """Look up a profile by name; a clear error lists the valid names.

    ``auto`` resolves to ``ci`` here: it is what a computation with no committed results (the toy
    demos and proof walkthroughs) runs at in a book build. Experiment grids handle ``auto`` before
    this, in :func:`paper_repro.experiments.load_grid`, by loading the highest-scale committed records.
    """
    if isinstance(name, Profile):
        return name
    if name == AUTO:
        return PROFILES["ci"]
    try:
        return PROFILES[name]
    except KeyError:
        valid = ", ".join(sorted(PROFILES) + [AUTO])
        raise ValueError(f"unknown profile {name!r}; expected one of: {valid}") from None
