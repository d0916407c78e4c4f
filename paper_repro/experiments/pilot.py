"""The pilot grid that chooses the ``cpu`` profile: which affordable scale can tell methods apart?

Grid ``pilot`` (``paper_repro.experiments.grids``): backbone width 1/4 and 1/2 x {vq, simvq, nsvq,
nsvq official}, K = 1024, D = 64, full Fashion-MNIST training split, evaluated on 2,000 test images
after each of 3 epochs, 2 seeds. One 3-epoch run gives the 1-, 2- and 3-epoch numbers.

The rule (stated in the issue that asked for this grid): the ``cpu`` profile is the cheapest scale at
which the experiment can discriminate, i.e. at least one method collapses (mean eval usage < 0.2)
and at least one keeps mean eval usage >= 0.8 at the same K and D. :func:`discriminating_scales`
applies it to every (width, epochs) cell the committed runs cover.
"""
from __future__ import annotations

import pandas as pd

from .report import epoch_frame

COLLAPSED, KEPT = 0.2, 0.8


def _method(tag: str) -> str:
    return tag.rsplit(" w", 1)[0] if isinstance(tag, str) else tag


def per_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, epoch): width, method, seed, epoch (1-based), eval usage and PSNR after it,
    and the training steps taken so far (the cost)."""
    ep = epoch_frame(df)
    ep = ep[ep["complete"]].copy()
    widths = dict(zip(df["config_hash"], df["width"]))
    ep["width"] = ep["config_hash"].map(widths)
    ep["method"] = ep["tag"].map(_method)
    ep["epoch"] = ep["epoch"] + 1
    ep["steps_so_far"] = ep.groupby("config_hash")["steps"].cumsum()
    keep = ["config_hash", "width", "method", "seed", "epoch", "steps_so_far", "eval.eval_usage", "eval.psnr"]
    return ep[[c for c in keep if c in ep]].rename(columns={"eval.eval_usage": "usage", "eval.psnr": "psnr"})


def pilot_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of eval usage and PSNR per (width, epochs, method)."""
    ep = per_epoch(df)
    g = ep.groupby(["width", "epoch", "method"], sort=True)
    out = g.agg(usage=("usage", "mean"), usage_sd=("usage", "std"), psnr=("psnr", "mean"),
                psnr_sd=("psnr", "std"), seeds=("seed", "nunique")).reset_index()
    return out.rename(columns={"epoch": "epochs"})


def discriminating_scales(df: pd.DataFrame) -> pd.DataFrame:
    """Per (width, epochs): the lowest and highest mean eval usage over methods, which methods they
    are, and whether the scale discriminates (some method < 0.2 and some >= 0.8), cheapest first.
    Cost: measured training minutes of one run to that epoch (mean over the width's runs, from the
    records' ``train_seconds``; on the recorded device and thread count)."""
    t = pilot_table(df)
    per_epoch_s = (df["train_seconds"] / df["epochs_done"]).groupby(df["width"]).mean()
    rows = []
    for (w, e), g in t.groupby(["width", "epochs"]):
        lo, hi = g.loc[g.usage.idxmin()], g.loc[g.usage.idxmax()]
        rows.append({"width": w, "epochs": e, "minutes per run": per_epoch_s[w] * e / 60,
                     "lowest usage": lo.usage, "collapsed method": lo.method,
                     "highest usage": hi.usage, "best method": hi.method,
                     "methods": len(g), "seeds": int(g.seeds.min()),
                     "discriminates": bool(lo.usage < COLLAPSED and hi.usage >= KEPT)})
    return pd.DataFrame(rows).sort_values(["minutes per run", "width"]).reset_index(drop=True)


def scale_verdicts(df: pd.DataFrame) -> list:
    """For each (width, epochs), "this scale discriminates" judged by the one rule over seeds: the
    method with the lowest mean usage is collapsed (< 0.2) and the one with the highest keeps
    >= 0.8 of the codes (``paper_repro.verdict``)."""
    from .. import verdict as V

    ep = per_epoch(df)
    t = pilot_table(df)
    out = []
    for (w, e), g in t.groupby(["width", "epochs"]):
        lo, hi = g.loc[g.usage.idxmin(), "method"], g.loc[g.usage.idxmax(), "method"]

        def seeds_of(m):
            s = ep[(ep.width == w) & (ep.epoch == e) & (ep.method == m)]
            return V.per_seed(s, "usage")

        out.append(V.judge_all(f"width {w:g}, {e} epoch{'s' if e > 1 else ''}: {lo} collapses and {hi} keeps "
                               f"the codebook", [V.judge(f"{lo} usage < {COLLAPSED}", seeds_of(lo), "<", COLLAPSED),
                                                 V.judge(f"{hi} usage >= {KEPT}", seeds_of(hi), ">=", KEPT)]))
    return out


def plot_pilot(df: pd.DataFrame):
    """Eval usage after each epoch per method, one panel per width: mean over seeds with the
    seeds' range as a band; the two thresholds of the rule dashed."""
    import matplotlib.pyplot as plt

    ep = per_epoch(df)
    widths = sorted(ep["width"].unique())
    fig, axes = plt.subplots(1, len(widths), figsize=(4.6 * len(widths), 3.4), sharey=True, squeeze=False)
    markers = dict(zip(sorted(ep["method"].unique()), "osD^v<>"))
    for ax, w in zip(axes[0], widths):
        for m, g in ep[ep.width == w].groupby("method"):
            s = g.groupby("epoch")["usage"].agg(["mean", "min", "max"])
            ax.plot(s.index, s["mean"], marker=markers[m], label=m)
            ax.fill_between(s.index, s["min"], s["max"], alpha=0.2)
        for y in (COLLAPSED, KEPT):
            ax.axhline(y, color="k", ls="--", lw=0.8)
        ax.set(xlabel="epochs trained", title=f"backbone width {w:g}", ylim=(0, 1.02))
        ax.set_xticks(sorted(ep["epoch"].unique()))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("eval usage (K = 1024, D = 64)")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def caption(df: pd.DataFrame) -> str:
    """The pilot's caption: data, what varies, evaluation, metric names."""
    widths = ", ".join(f"{w:g}" for w in sorted(df["width"].unique()))
    return (f"Fashion-MNIST 32\u00d732 (offline stand-in for CelebA-HQ), full 60,000-image training split, "
            f"batch 16, Adam 5e-4; backbone widths {widths} (1 = the paper's Table-1 backbone); K = 1024, "
            f"D = 64; evaluated on {int(df['eval_images'].iloc[0]):,} test images after each of "
            f"{int(df['epochs'].max())} epochs; {df['seed'].nunique()} seed(s); usage = fraction of the "
            f"K codes selected on the evaluation images.")
