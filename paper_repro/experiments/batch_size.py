"""Figure 4 (Sec. 3.2.2): vanilla VQ-VAE with K = D = 64 at several batch sizes (grid ``batch_size``).

Sec. 3.2.2 argues that a larger batch updates more codes per step, so fewer codes die; Figure 4
shows rFID curves falling with batch size. The paper prints no numbers for the figure, so only its
caption's claim is compared: :func:`claim_lines` evaluates it, and the usage side of the same
argument, on our runs. Our distance is named after the metric computed (``FD-VGG16`` offline).
"""
from __future__ import annotations

import pandas as pd

from .. import verdict as V
from .report import epoch_frame, fd_name, single_profile


def curves(df: pd.DataFrame) -> pd.DataFrame:
    """Per (batch size, epoch): mean over seeds of the evaluation after that epoch (FD, usage,
    PSNR) and the number of seeds. Needs runs trained with ``eval_every_epoch``."""
    ep = epoch_frame(df)
    if "eval.fd" not in ep and "eval.eval_usage" not in ep:
        raise ValueError("runs have no per-epoch evaluation (train them with eval_every_epoch=True)")
    ep = ep[ep["complete"]].copy()
    ep["epoch"] = ep["epoch"] + 1
    named = {"eval.fd": "fd", "eval.eval_usage": "usage", "eval.psnr": "psnr"}
    aggs = {}
    for c, n in named.items():
        if c in ep:
            aggs[n] = (c, "mean")
            aggs[f"{n}_sd"] = (c, "std")
    out = ep.groupby(["batch_size", "epoch"]).agg(**aggs, seeds=("seed", "nunique")).reset_index()
    return out


def final_table(df: pd.DataFrame) -> pd.DataFrame:
    """Final evaluation per batch size (mean over seeds), with the optimiser steps each run took."""
    fd = fd_name(df)
    g = df.groupby("batch_size")
    t = g.agg(steps=("steps", "mean"), usage=("eval_usage", "mean"), fd=("fd", "mean"),
              psnr=("psnr", "mean"), seeds=("seed", "nunique")).reset_index()
    t["steps"] = t["steps"].round().astype(int)
    return t.rename(columns={"batch_size": "batch size", "usage": "eval usage", "fd": fd,
                             "psnr": "PSNR (dB)"})


def verdicts(df: pd.DataFrame, arm: str | None = None) -> list:
    """The caption's claim (a larger batch gives a lower final distance) and Sec. 3.2.2's mechanism
    (a larger batch keeps more codes in use), each judged by the one rule
    (``paper_repro.verdict``) on every pair of consecutive batch sizes, paired by seed. ``arm``
    (e.g. "fixed steps") is named in each claim. Empty while fewer than two batch sizes have runs
    (a grid committed run by run)."""
    sizes = sorted(df["batch_size"].unique())
    if len(sizes) < 2:
        return []
    profile = single_profile(df)
    name = fd_name(df)

    def per_seed(b, col):
        s = df[df.batch_size == b]
        return V.per_seed(s, col)

    fd = [V.judge_difference(f"{name}(batch {a}) - {name}(batch {b}) > 0", per_seed(a, "fd"),
                             per_seed(b, "fd"), ">", 0.0, profile) for a, b in zip(sizes, sizes[1:])]
    us = [V.judge_difference(f"usage(batch {b}) - usage(batch {a}) > 0", per_seed(b, "eval_usage"),
                             per_seed(a, "eval_usage"), ">", 0.0, profile) for a, b in zip(sizes, sizes[1:])]
    from .grids import BATCH_SIZES
    pairs = len(BATCH_SIZES[profile]) - 1 if profile in BATCH_SIZES else None   # on the whole grid
    at = f" ({arm})" if arm else ""
    return [V.judge_all(f"Paper's Fig. 4: the final {name} falls with every larger batch size{at}", fd, pairs),
            V.judge_all(f"Sec. 3.2.2: the final eval usage rises with every larger batch size{at}", us, pairs)]


#: Figure 4's arms beyond the paper's (grid -> arm name): the same optimiser steps for every batch
#: size, and the same epochs with the learning rate scaled to the batch (``grids.scaled_lr``)
ARMS = {"batch_steps": "fixed steps", "batch_lr": "fixed epochs, lr ∝ √batch"}


def arm_frames(profile: str, root=None) -> dict:
    """arm name -> committed runs at ``profile``: the paper's fixed epochs (``batch_size``) and each
    arm of ``ARMS`` that has runs there (an arm with none is left out)."""
    from .runner import load_grid

    out = {}
    for grid, arm in (("batch_size", "fixed epochs"), *ARMS.items()):
        try:
            out[arm] = load_grid(grid, profile, root)[0]
        except FileNotFoundError:
            continue
    return out


def arm_verdicts(frames: dict) -> list:
    """:func:`verdicts` of each arm of ``ARMS`` in ``frames`` (the fixed-epochs arm is the
    ``batch_size`` page's own)."""
    return [v for arm in ARMS.values() if arm in frames for v in verdicts(frames[arm], arm=arm)]


def claim_lines(df: pd.DataFrame) -> list[str]:
    """:func:`verdicts` as lines, each with its cells."""
    return [V.explain(v) for v in verdicts(df)] or ["no claim judged yet: runs at two batch sizes are needed"]


def plot_curves(runs):
    """Distance and usage after each epoch, one line per batch size (mean over seeds, with a
    +-1 sd band over seeds when there are several). ``runs``: one table, or {arm name: table} for a
    row of the two panels per arm (same distance axis in every row). The caption belongs in the page
    text."""
    import matplotlib.pyplot as plt

    arms = runs if isinstance(runs, dict) else {None: runs}
    fig, axes = plt.subplots(len(arms), 2, figsize=(11, 3.9 * len(arms)), squeeze=False, sharey="col")
    cmap = plt.get_cmap("viridis")
    for (arm, df), row in zip(arms.items(), axes):
        c = curves(df)
        fd = fd_name(df)
        sizes = sorted(c["batch_size"].unique())
        for i, b in enumerate(sizes):
            s = c[c.batch_size == b]
            color = cmap(i / max(len(sizes) - 1, 1))
            for ax, col in ((row[0], "fd"), (row[1], "usage")):
                ax.plot(s.epoch, s[col], "-", marker="osD^v"[i % 5], color=color, label=f"batch {b}")
                if (s.seeds > 1).any():
                    sd = s[f"{col}_sd"].fillna(0)
                    ax.fill_between(s.epoch, s[col] - sd, s[col] + sd, color=color, alpha=0.15, lw=0)
        at = f" ({arm})" if arm else ""
        row[0].set(xlabel="epoch", ylabel=f"{fd} (lower is better)", title=f"{fd} after each epoch{at}")
        row[1].set(xlabel="epoch", ylabel="eval usage", ylim=(0, 1.02), title=f"codebook usage after each epoch{at}")
        for ax in row:
            ax.grid(alpha=0.3)
            ax.set_xticks(sorted(c["epoch"].unique()))
            ax.title.set_fontsize(10)
        row[1].legend(fontsize=9)
    fig.tight_layout()
    return fig
