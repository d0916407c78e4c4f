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
