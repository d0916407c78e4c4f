"""Table 6 (Supp. 12): the six methods on the Taming-style backbone, our runs (grid ``table6``) beside
the paper's transcribed rFID and LPIPS on ImageNet-1K.

A run's ``tag`` is ``"method | recipe"``: the method names the paper's row (settings in
:data:`paper_repro.experiments.grids.TABLE6_METHODS`, with the per-method K and D of the authors'
ImageNet code), the recipe the training loss (:data:`~paper_repro.experiments.grids.TABLE6_RECIPES`:
the paper's MSE + LPIPS, or the authors' code's L1 + LPIPS-VGG + hinge GAN). As on the Tables 2-3
page, the paper's rFID and our Frechet distance are never put in one column: ours is named after the
metric computed (``FD-VGG16``) and, below the ``paper`` profile, measured on other data.

The paper's claims about Table 6 are :data:`CLAIMS`, judged per recipe on our runs by the one rule
(``paper_repro.verdict``) and on the printed numbers by :func:`printed_holds`.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import verdict as V
from .grids import TABLE6_METHODS, TABLE6_RECIPES
from .report import NOT_RUN, fd_name, mean_sd, one_profile

METHODS = list(TABLE6_METHODS)
RECIPES = list(TABLE6_RECIPES)
SEP = " | "


def split_tags(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``method`` and ``recipe`` columns from the ``"method | recipe"`` tags; a clear
    error for runs that are not the ``table6`` grid's."""
    if "tag" not in df or df["tag"].isna().any():
        raise ValueError("runs without a 'method | recipe' tag; use the table6 grid")
    parts = [t.split(SEP) for t in df["tag"]]
    bad = sorted({t for t, p in zip(df["tag"], parts)
                  if len(p) != 2 or p[0] not in METHODS or p[1] not in RECIPES})
    if bad:
        raise ValueError(f"unknown tag(s) {bad}; expected 'method | recipe' with a method of {METHODS} "
                         f"and a recipe of {RECIPES}")
    return df.assign(method=[p[0] for p in parts], recipe=[p[1] for p in parts])


def in_table_order(df: pd.DataFrame) -> pd.DataFrame:
    """``df``'s runs in the paper's row order, then recipe, then seed (e.g. for the reconstructions)."""
    d = split_tags(df)
    key = [(METHODS.index(m), RECIPES.index(r), s) for m, r, s in zip(d["method"], d["recipe"], d["seed"])]
    return df.iloc[sorted(range(len(df)), key=key.__getitem__)]


def paper_table6(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 6 as printed: rows = method, columns rFID and LPIPS."""
    t = paper[paper["table"] == 6]
    w = t.pivot_table(index="method", columns="metric", values="value").reindex(METHODS)
    w.columns.name = None
    return w[["rFID", "LPIPS"]]


def ours_long(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per (recipe, method): K, D, eval usage, LPIPS, FD (named), PSNR, seeds."""
    d = split_tags(df)
    g = d.groupby(["recipe", "method"])
    out = g.agg(K=("num_codes", "first"), D=("code_dim", "first"), usage=("eval_usage", "mean"),
                usage_sd=("eval_usage", "std"), lpips=("lpips", "mean"), lpips_sd=("lpips", "std"),
                fd=("fd", "mean"), fd_sd=("fd", "std"), psnr=("psnr", "mean"),
                seeds=("seed", "nunique")).reset_index()
    out["fd_metric"] = fd_name(df)
    return out


def side_by_side(df: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Rows = method (the paper's order); columns: K and D, the paper's rFID and LPIPS as printed,
    then for each recipe with runs our LPIPS (AlexNet), FD (named) and eval usage as
    "mean ± sd (n seeds)" text ("not run" where a method has no run)."""
    o = ours_long(df)
    p = paper_table6(paper)
    cols = {("", "K"): [int(TABLE6_METHODS[m][2]) for m in METHODS],
            ("", "D"): [int(TABLE6_METHODS[m][3]) for m in METHODS],
            ("paper (ImageNet-1K)", "rFID"): p["rFID"].map("{:.3f}".format).tolist(),
            ("paper (ImageNet-1K)", "LPIPS"): p["LPIPS"].map("{:.3f}".format).tolist()}
    fd = o["fd_metric"].iloc[0]
    for recipe in [r for r in RECIPES if r in set(o["recipe"])]:
        r = o[o["recipe"] == recipe].set_index("method").reindex(METHODS)
        head = f"ours, {recipe}'s loss" if recipe == "paper" else f"ours, {recipe} loss"
        for name, col in (("LPIPS (AlexNet)", "lpips"), (fd, "fd"), ("eval usage", "usage")):
            fmt = ".2f" if col == "fd" else ".3f"
            cols[(head, name)] = [mean_sd(r.at[m, col], r.at[m, f"{col}_sd"], r.at[m, "seeds"], fmt, fmt)
                                  if pd.notna(r.at[m, col]) else NOT_RUN for m in METHODS]
    t = pd.DataFrame(cols, index=pd.Index(METHODS, name="method"))
    t.columns = pd.MultiIndex.from_tuples(t.columns)
    return t


# -- the paper's claims about Table 6, as data ------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """``best``: ``method``'s metric is below every other method's; ``beats``: below ``other``'s."""
    text: str
    kind: str
    method: str
    metric: str                  # "lpips" or "fd" (the paper's column: LPIPS or rFID)
    other: str | None = None


CLAIMS = (
    Claim("TransVQ has the lowest LPIPS of the six methods", "best", "TransVQ", "lpips"),
    Claim("TransVQ has the lowest rFID of the six methods (ours: the FD named in the table)", "best",
          "TransVQ", "fd"),
    Claim("NS-VQ has a lower LPIPS than VQGAN", "beats", "NS-VQ", "lpips", "VQGAN"),
    Claim("NS-VQ has a lower rFID than VQGAN (ours: the FD named in the table)", "beats", "NS-VQ", "fd", "VQGAN"),
)
_PAPER_COLUMN = {"lpips": "LPIPS", "fd": "rFID"}


def _rivals(c: Claim) -> list[str]:
    return [m for m in METHODS if m != c.method] if c.kind == "best" else [c.other]


def judge_claim(c: Claim, runs: pd.DataFrame, recipe: str):
    """The claim on our runs of one recipe (per seed: rival's metric - the method's > 0, every rival
    a cell); None while the method or every rival has no run."""
    d = split_tags(runs)
    d = d[d["recipe"] == recipe]
    if d.empty:
        return None
    profile = one_profile(d)
    mine = d[d["method"] == c.method]
    parts = []
    for r in _rivals(c):
        theirs = d[d["method"] == r]
        if mine.empty or theirs.empty:
            continue
        parts.append(V.judge_difference(f"{r} {c.metric} - {c.method} {c.metric} > 0",
                                        V.per_seed(theirs, c.metric), V.per_seed(mine, c.metric), ">", 0.0,
                                        profile))
    if not parts:
        return None
    return V.judge_all(f"Table 6: {c.text} [{recipe}'s loss]" if recipe == "paper" else
                       f"Table 6: {c.text} [{recipe} loss]", parts, len(_rivals(c)))


def printed_holds(c: Claim, paper: pd.DataFrame) -> bool:
    """Does the claim hold on the paper's Table 6 as printed (each comparison exact)?"""
    p = paper_table6(paper)[_PAPER_COLUMN[c.metric]]
    return all(p[r] > p[c.method] for r in _rivals(c))


def claim_verdicts(df: pd.DataFrame, paper: pd.DataFrame) -> list:
    """(claim, recipe, verdict on our runs or None, holds as printed) for every claim and every
    recipe with runs."""
    have = set(split_tags(df)["recipe"])
    return [(c, recipe, judge_claim(c, df, recipe), printed_holds(c, paper))
            for recipe in RECIPES if recipe in have for c in CLAIMS]


def plot_lpips_and_usage(df: pd.DataFrame):
    """Per method: LPIPS (left) and eval usage (right), one marker per seed and a bar for the mean,
    recipes side by side; the paper's LPIPS as a cross (left panel only: it printed no usage)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .paper_tables import load_paper_tables

    d = split_tags(df)
    recipes = [r for r in RECIPES if r in set(d["recipe"])]
    paper = paper_table6(load_paper_tables())
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    x = np.arange(len(METHODS))
    w = 0.8 / max(len(recipes), 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, col, label in ((axes[0], "lpips", "LPIPS (AlexNet; lower is better)"),
                           (axes[1], "eval_usage", "eval usage (fraction of K)")):
        for i, recipe in enumerate(recipes):
            off = (i - (len(recipes) - 1) / 2) * w
            for j, m in enumerate(METHODS):
                g = d[(d["recipe"] == recipe) & (d["method"] == m)]
                if g.empty:
                    continue
                ax.bar(x[j] + off, g[col].mean(), w * 0.9, color=colors[i], alpha=0.35,
                       label=f"ours, {recipe}" if j == 0 else None)
                ax.plot([x[j] + off] * len(g), g[col], "o", color=colors[i], ms=4)
        if col == "lpips":
            ax.plot(x, paper["LPIPS"].to_numpy(), "kx", ms=8, label="paper (ImageNet-1K)")
        ax.set_xticks(x, METHODS, rotation=20)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    axes[1].set_ylim(0, 1.05)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
