"""Tables 2-4, Figures 3 and 5: codebook usage and reconstruction against codebook size K and code
dimension D, our runs (grid ``codebook_size``) beside the paper's transcribed numbers; each
method's best configuration (Table 4's rule) and its reconstructions.

Our runs are labelled by the paper's method names (the config's ``tag``; see
:data:`paper_repro.experiments.grids.PAPER_METHODS` for the settings behind each name). The paper's
rFID and our Frechet distance are never put in one column: ours is named after the metric computed
(``FD-VGG16`` offline) and is measured on other data (Fashion-MNIST unless the ``paper`` profile ran
on CelebA-HQ). Usage is the one number put beside the paper's, with a caveat: the paper does not
define its "Usage"; the authors' code counts the codes hit over each epoch's training batches (our
records' ``train_epoch_usage``), while ours ("eval usage") is the fraction of the K codes selected on
the evaluation split, the stricter count; and the data differ.

The paper's claims about these tables are written once, as :data:`CLAIMS`, and judged on our runs
by the one verdict rule (``paper_repro.verdict``, over seeds) and on the paper's printed numbers by
:func:`claim_table`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from .. import verdict as V
from .grids import CODE_DIMS, PAPER_METHODS
from .report import NOT_RUN, fd_name, mean_sd, one_profile, trace_frame

METHODS = list(PAPER_METHODS)
OURS_METHODS = ("NS-VQ", "TransVQ")


def _check_tags(df: pd.DataFrame) -> None:
    if "tag" not in df or df["tag"].isna().any():
        raise ValueError("runs without a paper method name (config tag); use the codebook_size grid")
    unknown = sorted(set(df["tag"]) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method tag(s) {unknown}; expected {METHODS}")


def ours_long(df: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (method, D, K): usage, FD (named), PSNR; with the seed count."""
    _check_tags(df)
    fd = fd_name(df)
    g = df.groupby(["tag", "code_dim", "num_codes"])
    out = g.agg(usage=("eval_usage", "mean"), usage_sd=("eval_usage", "std"), fd=("fd", "mean"),
                psnr=("psnr", "mean"), seeds=("seed", "nunique")).reset_index()
    out = out.rename(columns={"tag": "method", "code_dim": "D", "num_codes": "K"})
    out["fd_metric"] = fd
    return out


def paper_long(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's Tables 2-3 as (method, D, K, usage, rFID). Codebook size 8912 (as printed) is
    read as 8192."""
    t = paper[paper["table"].isin([2, 3])].copy()
    t["K"] = t["codebook_size"].astype(int).replace({8912: 8192})
    t["D"] = t["code_dim"].astype(int)
    w = t.pivot_table(index=["method", "D", "K"], columns="metric", values="value").reset_index()
    w.columns.name = None
    return w.rename(columns={"rFID": "rfid"})



def usage_table(ours: pd.DataFrame, paper: pd.DataFrame, code_dim: int, text: bool = False) -> pd.DataFrame:
    """Rows = method, columns = (K, ours | paper) usage, for one code dimension. ``text=True``: cells
    as text for reading, ours as "mean ± sd (n seeds)" and "not run" where a cell has no runs."""
    o = ours[ours.D == code_dim].pivot(index="method", columns="K", values="usage")
    p = paper[paper.D == code_dim].pivot(index="method", columns="K", values="usage")
    if text:
        sd = ours[ours.D == code_dim].pivot(index="method", columns="K", values="usage_sd")
        n = ours[ours.D == code_dim].pivot(index="method", columns="K", values="seeds")
        o = pd.DataFrame({k: [mean_sd(o.at[i, k], sd.at[i, k], n.at[i, k]) for i in o.index] for k in o.columns},
                         index=o.index)
    ks = sorted(set(o.columns) | set(p.columns))
    cols = {}
    for k in ks:
        cols[(f"K = {k:,}", "ours")] = o[k] if k in o else pd.Series(dtype=object if text else float)
        cols[(f"K = {k:,}", "paper")] = p[k] if k in p else pd.Series(dtype=float)
    t = pd.DataFrame(cols).reindex(METHODS)
    if text:
        t = t.map(lambda v: v if isinstance(v, str) else NOT_RUN if pd.isna(v) else f"{v:.2f}")
    t.columns = pd.MultiIndex.from_tuples(t.columns)
    t.index.name = f"usage, D = {code_dim}"
    return t


def fd_table(ours: pd.DataFrame, text: bool = False) -> pd.DataFrame:
    """Our Frechet distance (named after the metric) by method, D and K (``text=True``: as text,
    "not run" where a cell has no runs)."""
    t = ours.pivot(index="method", columns=["D", "K"], values="fd").reindex(METHODS).sort_index(axis=1)
    t.columns = [f"D={d}, K={k:,}" for d, k in t.columns]
    if text:
        t = t.map(lambda v: NOT_RUN if pd.isna(v) else f"{v:.2f}")
    t.index.name = f"{ours['fd_metric'].iloc[0]} (ours; lower is better)"
    return t


def best_configs(df: pd.DataFrame) -> pd.DataFrame:
    """Table 4's rule on our runs: for each method, the (K, D) with the lowest mean Frechet
    distance over seeds, with its SSIM, LPIPS, distance and usage (means over seeds), and ``cells``:
    how many of the method's (K, D) cells have runs (the choice is among those; a partial grid may
    not hold the best)."""
    _check_tags(df)
    fd = fd_name(df)
    m = df.groupby(["tag", "num_codes", "code_dim"]).agg(
        ssim=("ssim", "mean"), lpips=("lpips", "mean"), fd=("fd", "mean"), usage=("eval_usage", "mean"),
        seeds=("seed", "nunique")).reset_index()
    m["cells"] = m.groupby("tag")["fd"].transform("size")
    best = m.loc[m.groupby("tag")["fd"].idxmin()].set_index("tag").reindex(
        [x for x in METHODS if x in set(m.tag)])
    best.index.name = "method"
    best = best.rename(columns={"num_codes": "K", "code_dim": "D", "ssim": "SSIM", "lpips": "LPIPS (AlexNet)",
                                "fd": fd, "usage": "eval usage"})
    return best


def best_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs (all seeds) of each method's best configuration, for its reconstructions."""
    best = best_configs(df)
    keep = {(m, int(r.K), int(r.D)) for m, r in best.iterrows()}
    mask = [(t, int(k), int(d)) in keep for t, k, d in zip(df["tag"], df["num_codes"], df["code_dim"])]
    out = df[mask].copy()
    out["_order"] = [METHODS.index(t) for t in out["tag"]]
    return out.sort_values(["_order", "seed"]).drop(columns="_order")


def paper_table4(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 4 (its best configurations), in the layout of :func:`best_configs`."""
    t = paper[paper["table"] == 4]
    w = t.pivot_table(index=["method", "codebook_size", "code_dim"], columns="metric", values="value")
    w = w.reset_index().set_index("method").reindex([m for m in METHODS if m in set(t.method)])
    w = w.rename(columns={"codebook_size": "K (as printed)", "code_dim": "D"})
    w.columns.name = None
    return w[["K (as printed)", "D", "SSIM", "LPIPS", "rFID"]]


# -- the paper's claims about Tables 2-3, as data ---------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """A claim about the usage table: ``kind`` is ``at_least`` (methods, bound), ``beats`` (a, b:
    a's usage >= b's in every cell) or ``falls`` (method, D: usage at the largest K < at the
    smallest)."""
    text: str
    kind: str
    args: tuple


#: "(near) full usage": the bound the paper's printed 1.00 is judged against (a fraction of the K codes)
FULL_USAGE = 0.95

CLAIMS = (
    Claim(f"NS-VQ and TransVQ use >= {FULL_USAGE:.0%} of the codes at every K and D", "at_least",
          (OURS_METHODS, FULL_USAGE)),
    Claim("NS-VQ's usage >= VQVAE2's (EMA with dead-code replacement) at every K and D", "beats", ("NS-VQ", "VQVAE2")),
    Claim("TransVQ's usage >= VQGAN-FC's at every K and D", "beats", ("TransVQ", "VQGAN-FC")),
    Claim("VQGAN-FC's usage is lower at the largest K than at the smallest (D = 64)", "falls", ("VQGAN-FC", 64)),
    Claim("VQVAE2's usage is lower at the largest K than at the smallest (D = 64)", "falls", ("VQVAE2", 64)),
)


def ours_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """Per-seed usage: (method, D, K, seed, usage), one row per run."""
    _check_tags(df)
    return pd.DataFrame({"method": df["tag"], "D": df["code_dim"].astype(int), "K": df["num_codes"].astype(int),
                         "seed": df["seed"].astype(int), "usage": df["eval_usage"].astype(float)})


def _series(t: pd.DataFrame, method: str, d: int, k: int) -> pd.Series:
    s = t[(t.method == method) & (t.D == d) & (t.K == k)]
    return V.per_seed(s, "usage")


def judge_claim(c: Claim, t: pd.DataFrame, profile: str | None = None, printed: bool = False,
                n_cells: int | None = None):
    """The claim's verdict on per-seed usage ``t`` (method, D, K, seed, usage) by the one rule
    (``paper_repro.verdict``). ``printed=True``: ``t`` holds the paper's numbers as printed (one
    value per cell), each compared exactly. Returns None when ``t`` has no cell the claim needs."""
    def cell(text, a, b=None, op=">=", thr=0.0):
        if printed:
            x = float(a.iloc[0]) - (float(b.iloc[0]) if b is not None else 0.0)
            return V.judge(text, [x], op, thr, exact=True)
        if b is None:
            return V.judge(text, a, op, thr, profile)
        return V.judge_difference(text, a, b, op, thr, profile)

    parts = []
    if c.kind == "at_least":
        methods, bound = c.args
        for (m, d, k), _ in t[t.method.isin(methods)].groupby(["method", "D", "K"]):
            parts.append(cell(f"{m} D={d} K={k}: usage >= {bound}", _series(t, m, d, k), op=">=", thr=bound))
    elif c.kind == "beats":
        a, b = c.args
        cells = set(map(tuple, t[t.method == a][["D", "K"]].to_numpy())) & \
            set(map(tuple, t[t.method == b][["D", "K"]].to_numpy()))
        for d, k in sorted(cells):
            parts.append(cell(f"D={d} K={k}: {a} usage - {b} usage >= 0", _series(t, a, d, k),
                              _series(t, b, d, k), ">=", 0.0))
    elif c.kind == "falls":
        m, d = c.args
        ks = sorted(t[(t.method == m) & (t.D == d)]["K"].unique())
        if len(ks) >= 2:
            parts.append(cell(f"{m} D={d}: usage at K={ks[0]} - at K={ks[-1]} > 0",
                              _series(t, m, d, ks[0]), _series(t, m, d, ks[-1]), ">", 0.0))
    else:
        raise ValueError(f"unknown claim kind {c.kind!r}")
    return V.judge_all(c.text, parts, n_cells) if parts else None


def claim_verdicts(df: pd.DataFrame, paper: pd.DataFrame) -> list:
    """(claim, verdict on our runs, verdict on the paper's printed numbers) for each of
    :data:`CLAIMS`, both restricted to the (method, D, K) cells both have, so they speak about the
    same cells. Where no run serves a claim yet, ours is listed as not judged (``V.not_run``: no
    parts) and the paper's is judged on all its printed cells (None only where the paper has none
    either). ``df``: our runs (one row per run); ``paper``: :func:`paper_long`."""
    ours = ours_seeds(df)
    profile = one_profile(df)
    cells = ours[["method", "D", "K"]].drop_duplicates().merge(paper[["method", "D", "K"]])
    o = ours.merge(cells)
    p = paper.merge(cells).assign(seed=0)
    out = []
    for c in CLAIMS:
        vo = judge_claim(c, o, profile, n_cells=cells_needed(c, profile))
        vp = judge_claim(c, p if vo is not None else paper.assign(seed=0), printed=True)
        out.append((c, vo if vo is not None else V.not_run(c.text, cells_needed(c, profile), profile=profile), vp))
    return out


def printed_holds(vp) -> str:
    return "no shared cells" if vp is None else "holds" if vp.verdict == V.SUPPORTED else "does not hold"


def cells_needed(c: Claim, profile: str) -> int:
    """How many (method, D, K) comparisons the claim makes on the profile's whole grid."""
    from .grids import CODEBOOK_SIZES
    per_dim = len(CODEBOOK_SIZES.get(profile, CODEBOOK_SIZES["paper"]))
    if c.kind == "at_least":
        return len(c.args[0]) * len(CODE_DIMS) * per_dim
    if c.kind == "beats":
        return len(CODE_DIMS) * per_dim
    return 1


def claim_table(df: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """:func:`claim_verdicts` as a table: verdict, seeds and how many of the claim's cells our runs
    cover (a partial grid judges fewer cells than the claim names), and the paper as printed."""
    return pd.DataFrame([{"": vo.mark, "claim": c.text,
                          "ours": vo.verdict if vo.parts else "not run yet",
                          "ours (seeds)": vo.n,
                          "cells judged": f"{len(vo.parts)} of {vo.cells}",
                          "paper, as printed": printed_holds(vp) + ("" if vo.parts or vp is None else " (all its cells)")}
                         for c, vo, vp in claim_verdicts(df, paper)])


def plot_usage_and_fd(ours: pd.DataFrame, paper: pd.DataFrame):
    """Figure 3 style: usage against K (ours solid, paper dashed) for D = 3 and 64, and our FD
    (solid D = 3, dotted D = 64). One legend below: colour = method."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    colors = dict(zip(METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    markers = dict(zip(METHODS, "osD^vP"))
    for ax, d in zip(axes[:2], CODE_DIMS):
        for m in METHODS:
            o = ours[(ours.method == m) & (ours.D == d)].sort_values("K")
            p = paper[(paper.method == m) & (paper.D == d)].sort_values("K")
            ax.plot(o.K, o.usage, "-", marker=markers[m], color=colors[m])
            if (o.seeds > 1).any():     # seed band: mean +- sd over seeds
                ax.fill_between(o.K, o.usage - o.usage_sd.fillna(0), o.usage + o.usage_sd.fillna(0),
                                color=colors[m], alpha=0.15, lw=0)
            ax.plot(p.K, p.usage, "--x", color=colors[m], alpha=0.6)
        ax.set(xscale="log", ylim=(-0.03, 1.05), xlabel="codebook size K", ylabel="codebook usage",
               title=f"usage, D = {d} (solid: ours, dashed: paper)")
        ax.grid(alpha=0.3)
    for d, ls in zip(CODE_DIMS, ("-", ":")):
        for m in METHODS:
            o = ours[(ours.method == m) & (ours.D == d)].sort_values("K")
            axes[2].plot(o.K, o.fd, ls, marker=markers[m], color=colors[m])
    axes[2].set(xscale="log", xlabel="codebook size K", ylabel=f"{ours['fd_metric'].iloc[0]} (ours)",
                title="ours only, not rFID (solid: D = 3, dotted: D = 64)")
    axes[2].grid(alpha=0.3)
    for ax in axes:
        ax.title.set_fontsize(9)
    handles = [Line2D([], [], color=colors[m], marker=markers[m], label=m) for m in METHODS]
    fig.legend(handles=handles, loc="lower center", ncol=len(METHODS), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))       # the caption is in the page's text, not in the image
    return fig


def usage_over_training(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(trace table with a ``cell`` column "D = d, K = k", the cells with runs in table order)."""
    tf = trace_frame(df)
    tf["cell"] = [f"D = {d}, K = {k:,}" for d, k in zip(tf["code_dim"], tf["num_codes"])]
    cells = [f"D = {d}, K = {k:,}" for d in CODE_DIMS for k in sorted(set(tf["num_codes"]))
             if ((tf["code_dim"] == d) & (tf["num_codes"] == k)).any()]
    return tf, cells


def plot_usage_over_training(df: pd.DataFrame):
    """Each method's training usage over its optimiser steps (from the records' loss traces), one
    panel per (D, K) cell with runs, mean over seeds with a ±1 sd band; log step axis."""
    from .mechanisms import plot_probes
    tf, cells = usage_over_training(df)
    return plot_probes(tf, ["window_usage"], by="tag", facet="cell", facet_order=cells, wrap=3, logx=True,
                       order=[m for m in METHODS if m in set(tf["tag"])],
                       labels={"window_usage": "usage in the steps before"})
