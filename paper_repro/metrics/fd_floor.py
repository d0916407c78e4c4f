"""How far apart two samples of *real* images are in FD-VGG16@native: a scale for the book's FD.

The book's FD (``fid.fd_vgg16`` at native resolution, the ``ci`` and ``cpu`` profiles) compares a run's
reconstructions of the evaluation images with those same images, so a perfect reconstruction scores
0. To read a value it helps to know how far apart two *independent* samples of real images of the
same size are: the evaluation images of a profile (``eval_images`` of them, the subset the trainer
evaluates on) against as many other real images drawn from the training split. Reconstructions
closer than that are as close to their originals, in VGG16 feature statistics, as another sample of
real images is; the estimator's small-sample bias is part of both numbers.

``python -m paper_repro.metrics.fd_floor`` measures it (10 draws per size; a few minutes on two
cores: VGG16 features of the evaluation subsets and of a seeded pool of training images, computed
once, then FD per draw) and writes ``data/results/fd_floor/`` with provenance. Pages read the
committed table (:func:`scale`); nothing recomputes it in a build.
"""
from __future__ import annotations

import torch

from ..study import Study
from .fid import FeatureStats, fd_from_stats, fd_vgg16_name

#: draws of the training sample per size
SEEDS = tuple(range(10))
#: training images whose features are computed once; each draw takes ``eval_images`` of them
POOL = 20_000

STUDY = Study(
    "fd_floor", keys=("eval_images",), floor={"fd_real_real": 0.01},
    bounds={"fd_real_real": (0.0, float("inf"))},
    command="python -m paper_repro.metrics.fd_floor",
    why="Not rechecked in a build (a few minutes of VGG16 features); the pages read the committed table.")


def sizes() -> tuple[int, ...]:
    """The evaluation sizes of the profiles whose FD is FD-VGG16@native on Fashion-MNIST (from the
    profile registry)."""
    from ..profiles import PROFILES
    return tuple(sorted({p.eval_images for p in PROFILES.values()
                         if p.dataset == "fashion_mnist" and p.fd_resize is None and p.eval_images}))


@torch.no_grad()
def features(images: torch.Tensor, batch_size: int = 250, progress: bool = False) -> torch.Tensor:
    """VGG16 relu5_3 features at native resolution (the FD-VGG16@native network) of uint8 or float
    images (N, 3, H, W), as an (N, 512) float64 tensor."""
    from ..data import to_float
    from .perceptual import vgg16_features_model

    model = vgg16_features_model(None, "cpu")
    batches = range(0, len(images), batch_size)
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="VGG16 features", unit="batch")
    return torch.cat([model(to_float(images[i:i + batch_size])).double() for i in batches])


def fd_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """FD between two feature sets (rows), as the evaluation computes it (``FeatureStats``)."""
    return fd_from_stats(FeatureStats(a.shape[1]).update(a), FeatureStats(b.shape[1]).update(b))


def draws(eval_feats: dict, pool_feats: torch.Tensor, seeds=SEEDS):
    """One row per (size, seed): FD between the evaluation features of that size and ``size`` rows of
    the pool drawn without replacement by ``seed``."""
    import pandas as pd

    rows = []
    for n, ev in eval_feats.items():
        if n > len(pool_feats):
            raise ValueError(f"a draw of {n} needs a pool of at least {n} images, have {len(pool_feats)}")
        for s in seeds:
            pick = torch.randperm(len(pool_feats), generator=torch.Generator().manual_seed(int(s)))[:n]
            rows.append({"eval_images": n, "seed": int(s), "fd_real_real": fd_between(ev, pool_feats[pick])})
    return pd.DataFrame(rows)


def measure(seeds=SEEDS, pool: int = POOL, progress: bool = False):
    """The study's table: the evaluation subsets exactly as the trainer selects them
    (``load_tensor_dataset(..., limit=eval_images, seed=data_seed 0)`` of the val split) against
    draws from a seeded pool of training images."""
    from ..data import load_tensor_dataset

    ev = {n: features(load_tensor_dataset("fashion_mnist", "val", limit=n, seed=0)) for n in sizes()}
    pool_feats = features(load_tensor_dataset("fashion_mnist", "train", limit=pool, seed=12345), progress=progress)
    return draws(ev, pool_feats, seeds)


def scale(eval_images: int, metric: str) -> str:
    """"two independent samples of N real images lie FD-VGG16@native m ± s apart (...)" from the committed
    study, for a caption; empty where the study does not cover that metric or size (or is absent)."""
    if metric != fd_vgg16_name(None):
        return ""
    try:
        df, _ = STUDY.load()
    except FileNotFoundError:
        return ""
    v = df.loc[df["eval_images"] == int(eval_images), "fd_real_real"]
    if len(v) < 2:
        return ""
    return (f"two independent samples of {int(eval_images):,} real images lie {metric} {v.mean():.2f} "
            f"\u00b1 {v.std(ddof=1):.2f} apart (mean \u00b1 sd over {len(v)} draws, study fd_floor)")


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="FD-VGG16@native between two real samples -> data/results/fd_floor/")
    ap.add_argument("--seeds", type=int, default=len(SEEDS), help="draws 0..N-1 per size")
    ap.add_argument("--pool", type=int, default=POOL, help="training images whose features are computed")
    args = ap.parse_args(argv)
    if args.seeds < 2:
        ap.error("--seeds must be >= 2 (a spread needs two draws)")
    setup = {"dataset": "fashion_mnist", "eval_split": "val", "eval_data_seed": 0, "sizes": list(sizes()),
             "pool": args.pool, "pool_split": "train", "pool_seed": 12345, "seeds": list(range(args.seeds)),
             "metric": fd_vgg16_name(None)}
    df, out = STUDY.measure(lambda: measure(tuple(range(args.seeds)), args.pool, progress=True), setup)
    print(df.groupby("eval_images")["fd_real_real"].agg(["mean", "std", "count"]).round(3).to_string())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
