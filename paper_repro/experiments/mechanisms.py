"""Why each method works or fails: the mechanism grids' tables, curves and verdicts.

Grids (``experiments.grids``): ``nsvq_ablation`` (NS-VQ's switches), ``transvq_diagnosis`` (TransVQ's
map vs SimVQ), ``batch_steps`` (Figure 4 at fixed optimiser steps), ``replacement`` (dead-code
replacement across methods) and ``causes`` (initialisation x encoder width x method). Runs with
training probes (``training.probes``) carry a measurement every ``probe_every`` steps;
:func:`probe_frame` makes them one tidy table, :func:`plot_probes` draws them with seed bands.

Every verdict uses the book's one rule (``paper_repro.verdict``) on per-seed values, paired by seed;
a claim about several cells is supported only when each cell is, and a partial grid is at best
inconclusive (``cells``).
"""
from __future__ import annotations

import math

import pandas as pd

from .. import verdict as V
from .report import _records, mean_sd, single_profile

#: the paper side of a claim that is not the paper's (see ``Verdict.side``): the one label of verdict.OURS
OURS_SIDE = V.OURS
PAPER_VS_CODE_SIDE = "the paper's Eq. 21-23 against the authors' released code"
#: Sec. 3.3.3 claims that the modified STE "improves stability under encoder drift", not usage: judging
#: it by eval usage is our reading
MODIFIED_STE_SIDE = "our reading of Sec. 3.3.3 (\"improves stability under encoder drift\"; no usage claimed)"

#: probe columns, with the label a figure or table prints
PROBE_LABELS = {
    "probe_usage": "usage (probe images)",
    "probe_psnr": "PSNR (dB, probe images)",
    "latent_rank": "latent participation ratio",
    "churn_per_step": "latents changing code per step (encoder + codebook)",
    "churn_encoder_per_step": "latents changing code per step (encoder; codebook held)",
    "relative_drift": "latent move / distance to code",
    "kernel_mass": "codes with kernel weight > 0.1",
    "kernel_scale": "kernel width 2 sigma^2",
    "code_spread": "codebook RMS spread",
    "code_rank": "codebook participation ratio",
    "code_stacked": "codes stacked on another code (fraction)",
    "quantization_rms": "RMS latent-to-code distance",
    "attention_rank": "attention effective rank",
}
_KEYS = ("tag", "quantizer", "num_codes", "code_dim", "width", "batch_size", "seed")

#: probe columns measured between a probe and the one before it: their value depends on how many steps
#: lie between the two, so they are comparable only over comparable intervals (see ``regular_drift``)
DRIFT_COLUMNS = ("churn", "churn_per_step", "churn_encoder", "churn_encoder_per_step", "relative_drift")

#: the shortest interval, as a share of the run's ``probe_every``, over which a drift value is shown. A
#: probe at an epoch's end splits a probe interval in two, and churn per step is larger over the shorter
#: part: a latent oscillating across a cell boundary counts once however often it crosses, so churn
#: saturates. Vanilla VQ, batch 64, cpu (batch_steps): ~0.07 per step over 1 step, ~1.4e-3 over
#: 128-255 steps, ~0.9e-3 over 256-511 (``churn_by_interval``)
MIN_DRIFT_INTERVAL = 0.9


# -- tables ------------------------------------------------------------------------------------------
def probe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, probe): the run's config keys (``tag`` from ``df``, the grid's current
    label), ``step``, ``images`` (= step x batch size), ``interval`` (steps since the run's previous
    probe; None at its first), the run's ``probe_every`` and every probe value. Runs without probes
    contribute no rows."""
    rows = []
    tags = dict(zip(df["config_hash"], df["tag"])) if {"config_hash", "tag"} <= set(df.columns) else {}
    for rec in _records(df):
        cfg = rec["config"]
        keys = {k: cfg.get(k) for k in _KEYS}
        keys["tag"] = tags.get(rec["config_hash"], keys["tag"])     # the grid's current label
        prev = None
        for p in rec.get("probes", []):
            rows.append({**keys, "config_hash": rec["config_hash"], "images": p["step"] * cfg["batch_size"],
                         "interval": None if prev is None else p["step"] - prev,
                         "probe_every": cfg.get("probe_every"), **p})
            prev = p["step"]
    cols = [*_KEYS, "config_hash", "step", "images", "interval", "probe_every", "epoch", *PROBE_LABELS]
    out = pd.DataFrame(rows)
    return out.reindex(columns=[c for c in cols if c in out.columns] + [c for c in out.columns if c not in cols]) \
        if rows else pd.DataFrame(columns=cols)


def measured(pf: pd.DataFrame, columns) -> list[str]:
    """Those of ``columns`` that some probe of ``pf`` measured (a probe column added to the trainer
    after a grid's first runs is absent, or None, in the runs before it)."""
    return [c for c in columns if c in pf.columns and pf[c].notna().any()]


def regular_drift(pf: pd.DataFrame) -> pd.Series:
    """Rows whose drift values (``DRIFT_COLUMNS``) were measured over at least ``MIN_DRIFT_INTERVAL``
    of the run's probe interval (all rows where a frame has no intervals)."""
    if not {"interval", "probe_every"} <= set(pf.columns):
        return pd.Series(True, index=pf.index)
    interval = pd.to_numeric(pf["interval"], errors="coerce")
    every = pd.to_numeric(pf["probe_every"], errors="coerce")
    return every.isna() | (interval >= MIN_DRIFT_INTERVAL * every)


def churn_by_interval(pf: pd.DataFrame, by: str = "tag") -> pd.DataFrame:
    """Assignment churn against the number of steps between the two probes that measured it: per arm
    (``by``) and interval bin (1, 2-3, 4-7, ... steps: powers of two), the probes (over runs and
    training), the mean fraction of probe latents that changed code, and the mean of that per step.
    Churn over one step set against churn over a full probe interval shows how much of it is latents
    oscillating across a boundary rather than moving on."""
    cols = [by, "steps between probes", "probes", "churn", "churn per step"]
    s = pf[pf["churn"].notna() & pf["interval"].notna()] if {"churn", "interval"} <= set(pf.columns) else pf.iloc[:0]
    s = s[pd.to_numeric(s["interval"], errors="coerce") >= 1] if len(s) else s
    if s.empty:
        return pd.DataFrame(columns=cols)
    iv = s["interval"].astype(int)
    lo = 2 ** iv.map(lambda n: n.bit_length() - 1)
    s = s.assign(lo=lo, churn=s["churn"].astype(float), per_step=s["churn"].astype(float) / iv)
    g = s.groupby([by, "lo"]).agg(probes=("churn", "size"), churn=("churn", "mean"),
                                  per_step=("per_step", "mean")).reset_index()
    g["steps between probes"] = [str(a) if a == 1 else f"{a}-{2 * a - 1}" for a in g["lo"]]
    return g.rename(columns={"per_step": "churn per step"})[cols]


def last_probe(pf: pd.DataFrame) -> pd.DataFrame:
    """Each run's last probe (the trained model, on the probe images)."""
    if pf.empty:
        return pf
    return pf.sort_values("step").groupby("config_hash", sort=False).tail(1).reset_index(drop=True)


def mean_sd_text(values) -> str:
    """``"m ± sd (n seeds)"`` (``"m (1 seed)"``; ``"not run"`` for none) of per-seed values
    (``report.mean_sd``, three significant digits). Equal values have sd 0 (not the rounding error
    of their mean)."""
    x = pd.Series([v for v in values if v is not None], dtype=float).dropna()
    sd = 0.0 if len(x) > 1 and x.nunique() == 1 else x.std(ddof=1)
    return mean_sd(x.mean() if len(x) else float("nan"), sd, len(x), ".3g", ".2g")


def onset_steps(pf: pd.DataFrame, column: str = "probe_usage", level: float = 0.1) -> pd.DataFrame:
    """Per run (config_hash, with its ``tag`` and ``seed``): the first probe step at which ``column``
    reaches ``level`` (NaN when it never does), the run's first probe step after step 0 and its last."""
    rows = []
    for h, s in pf[pf[column].notna()].sort_values("step").groupby("config_hash", sort=False):
        hit = s[s[column] >= level]
        later = s[s["step"] > 0]["step"]
        rows.append({"config_hash": h, "tag": s["tag"].iloc[0], "seed": s["seed"].iloc[0],
                     "onset": float(hit["step"].iloc[0]) if len(hit) else float("nan"),
                     "first_step": float(later.iloc[0]) if len(later) else float("nan"),
                     "last_step": float(s["step"].iloc[-1])})
    return pd.DataFrame(rows, columns=["config_hash", "tag", "seed", "onset", "first_step", "last_step"])


def onset_table(pf: pd.DataFrame, order, column: str = "probe_usage", levels=(0.1, 0.5)) -> pd.DataFrame:
    """One row per arm in ``order``: for each level, the first probe step at which ``column`` reaches
    it, as "mean ± sd (n seeds)" over the seeds that reach it ("<= 375 (first probe)" when every one
    of them already had at the first probe after step 0: a bound, not a measured step; "never"; "not
    run" for an arm without probed runs), plus how many of the arm's runs did ("3 of 3")."""
    onsets = {level: onset_steps(pf, column, level) for level in levels}
    rows = []
    for arm in order:
        row = {"tag": arm}
        for level, o in onsets.items():
            o = o[o["tag"] == arm]
            label = f"first step with {PROBE_LABELS.get(column, column)} >= {level:g}"
            reached = o[o["onset"].notna()]
            x = reached["onset"]
            if len(x) and (x == reached["first_step"]).all() and x.nunique() == 1:
                row[label] = f"<= {x.iloc[0]:,.0f} (first probe)"
            else:
                row[label] = mean_sd(x.mean(), x.std(ddof=1), len(x), ",.0f", ",.0f") if len(x) \
                    else ("never" if len(o) else "not run")
            row[f"runs reaching {level:g}"] = f"{int(o['onset'].notna().sum())} of {len(o)}"
        rows.append(row)
    return pd.DataFrame(rows)


def probe_course(pf: pd.DataFrame, column: str, order, fractions=(0.0, 0.25, 0.5, 0.75, 1.0),
                 first_probe: bool = False) -> pd.DataFrame:
    """``column`` over training, one row per arm in ``order``: at each fraction of a run's probed steps,
    the probe nearest that step (per run), as "mean ± sd (n seeds)" over the arm's runs ("not run" for
    an arm without probes). ``first_probe``: also, after "start", each run's first probe after step 0
    (the column names its step, or the range of steps over the runs): whether what a run has at step 0
    (e.g. a data-driven initialisation's usage) survives the first optimiser steps; it needs 0.0 in
    ``fractions``."""
    if first_probe and 0.0 not in fractions:
        raise ValueError("first_probe=True shows the first probe next to the start: fractions must include 0.0")
    s_all = pf[pf["tag"].isin(list(order)) & pf[column].notna()]
    first_rows = _first_after_start(s_all, column)
    firsts = first_rows["step"]
    first_label = ("first probe" if firsts.empty else
                   f"first probe (step {firsts.min():,.0f})" if firsts.nunique() == 1 else
                   f"first probe (step {firsts.min():,.0f} to {firsts.max():,.0f})")
    rows = []
    for arm in order:
        s = s_all[s_all["tag"] == arm]
        row = {"tag": arm}
        for f in fractions:
            vals = []
            for _, run in s.groupby("config_hash", sort=False):
                target = f * run["step"].max()
                vals.append(float(run.loc[(run["step"] - target).abs().idxmin(), column]))
            label = {0.0: "start", 1.0: "end"}.get(f, f"{f:.0%} of training")
            row[label] = mean_sd_text(vals) if vals else "not run"
            if f == 0.0 and first_probe:
                later = first_rows[first_rows["tag"] == arm]
                row[first_label] = mean_sd_text(later[column]) if len(later) else "not run"
        rows.append(row)
    return pd.DataFrame(rows)


def start_kept(pf: pd.DataFrame, tag_contains: str = "kmeans init", column: str = "probe_usage") -> dict | None:
    """What a start keeps through the first optimiser steps, over the runs whose tag contains
    ``tag_contains`` and that have a probe at step 0 and one after it: ``{"runs": n, "start": mean of
    ``column`` at step 0, "first": mean at each run's first probe after step 0, "steps": (fewest, most)
    steps to that probe}``; None when no run qualifies."""
    if pf.empty:
        return None
    s = pf[pf["tag"].str.contains(tag_contains, regex=False) & pf[column].notna()]
    at0 = s[s["step"] == 0].groupby("config_hash")[column].first()
    first = _first_after_start(s, column).set_index("config_hash")
    runs = first.index.intersection(at0.index)
    if runs.empty:
        return None
    return {"runs": len(runs), "start": float(at0[runs].mean()), "first": float(first.loc[runs, column].mean()),
            "steps": (int(first.loc[runs, "step"].min()), int(first.loc[runs, "step"].max()))}


def _first_after_start(pf: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each run's first probe after step 0 that has a value of ``column`` (one row per config_hash)."""
    s = pf[(pf["step"] > 0) & pf[column].notna()]
    return s.sort_values("step", kind="stable").groupby("config_hash", sort=False).head(1)


def arm_table(df: pd.DataFrame, order, by: str = "tag", columns: dict | None = None,
              split: str | None = "num_codes", extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per arm in ``order`` (values of ``by``) and value of ``split`` (e.g. K); columns:
    ``columns`` {column: label} (default eval usage, PSNR) as "mean ± sd (n seeds)" ("not run" where
    a cell has no run). ``extra``: per-run values to join on config_hash (e.g. :func:`last_probe`)."""
    columns = columns or {"eval_usage": "eval usage", "psnr": "PSNR (dB)"}
    d = df if extra is None else df.merge(extra[["config_hash", *[c for c in columns if c in extra]]],
                                          on="config_hash", how="left")
    splits = sorted(d[split].dropna().unique()) if split else [None]
    split_label = {"num_codes": "K"}.get(split, split)
    rows = []
    for arm in order:
        for sv in splits:
            s = d[(d[by] == arm) & ((d[split] == sv) if split else True)]
            row = {by: arm, **({split_label: sv} if split else {})}
            for c, label in columns.items():
                row[label] = mean_sd_text(s[c]) if c in s else "not run"
            rows.append(row)
    return pd.DataFrame(rows)


def refine_table(df: pd.DataFrame, order) -> pd.DataFrame:
    """The adversarial stage's terms per arm in ``order`` (tags) and K, over the stage's epochs of
    each run (the records' per-epoch means): the GAN weight applied (``refine_gan_weight``, times the
    adaptive rule's lambda where that rule is on), the weighted generator and discriminator hinge
    terms, and the LPIPS term, as "mean ± sd (n seeds)"; arms without the stage are left out."""
    from .report import _records, epoch_frame

    weight = {r["config_hash"]: (r["config"].get("refine_gan_weight"), r["config"].get("refine_gan_weighting", "fixed"))
              for r in _records(df)}
    ef = epoch_frame(df)
    if "refine_lpips" not in ef:
        return pd.DataFrame()
    stage = ef[ef["refine_lpips"].notna()].copy()
    if stage.empty:
        return pd.DataFrame()
    lam = stage["refine_adaptive_weight"] if "refine_adaptive_weight" in stage else pd.Series(float("nan"), stage.index)
    stage["applied"] = [w * (float(l) if rule == "adaptive" else 1.0)
                        for (w, rule), l in zip((weight[h] for h in stage["config_hash"]), lam)]
    per_run = (stage.groupby("config_hash")[["applied", "refine_gan_g", "refine_gan_d", "refine_lpips"]].mean()
               .join(df.set_index("config_hash")[["tag", "num_codes"]]).reset_index())
    present = [a for a in order if a in set(per_run["tag"])]
    return arm_table(per_run, present, columns={"applied": "GAN weight applied", "refine_gan_g": "weighted GAN term (G)",
                                                "refine_gan_d": "discriminator hinge loss", "refine_lpips": "LPIPS term"})


def codes_in_use(df: pd.DataFrame, order) -> pd.DataFrame:
    """Codes in use at the end of training (eval usage x K) per arm in ``order`` (tags), one column
    per K ("mean ± sd (n seeds)"), and the ratio of the mean counts at the largest and the smallest K
    (``theory/meanshift``: with NS-VQ's kernel the count is set far more by the kernel width than by K)."""
    d = df.assign(codes_used=df["eval_usage"] * df["num_codes"])
    sizes = sorted(int(k) for k in d["num_codes"].dropna().unique())
    rows = []
    for arm in order:
        s = d[d["tag"] == arm]
        row = {"tag": arm}
        for k in sizes:
            row[f"K = {k:,}"] = mean_sd_text(s.loc[s["num_codes"] == k, "codes_used"])
        means = [s.loc[s["num_codes"] == k, "codes_used"].mean() for k in (sizes[0], sizes[-1])]
        row[f"ratio {sizes[-1]:,} / {sizes[0]:,}"] = (round(float(means[1] / means[0]), 2)
                                                     if len(sizes) > 1 and means[0] > 0 else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


# -- figures -----------------------------------------------------------------------------------------
def plot_probes(pf: pd.DataFrame, metrics, by: str = "tag", facet: str | None = "num_codes",
                x: str = "step", order=None, logy: tuple = (), logx: bool = False,
                facet_order=None, wrap: int | None = None, labels: dict | None = None, sharey: bool = False):
    """One panel per (metric, facet value), a metric per row and a facet value per column (without
    a facet, the metrics two to a row; with one metric and ``wrap``, at most ``wrap`` facets to a
    row): a line per arm (mean over seeds, ±1 sd band when there are several seeds), a marker per
    arm. ``labels``: axis labels beyond PROBE_LABELS. ``sharey``: a metric's panels share one y range,
    so that the facets (e.g. widths) compare at a glance. Drift values (``DRIFT_COLUMNS``) are drawn
    only where measured over a regular interval (``regular_drift``). The caption belongs in the page
    text."""
    import textwrap

    import matplotlib.pyplot as plt

    metrics = list(metrics)
    labels = {**PROBE_LABELS, **(labels or {})}
    facets = (list(facet_order) if facet_order is not None else sorted(pf[facet].dropna().unique())) \
        if facet else [None]
    arms = list(order) if order is not None else sorted(pf[by].dropna().unique())
    panels = [(m, fv) for m in metrics for fv in facets]
    ncols = (min(len(facets), wrap) if wrap and len(metrics) == 1 else len(facets)) if facet \
        else min(2, len(metrics))
    nrows = math.ceil(len(panels) / ncols)
    legend_rows = math.ceil(len(arms) / 3)
    height = 3.0 * nrows + 0.35 + 0.25 * legend_rows
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, height), squeeze=False, dpi=110)
    cmap = plt.get_cmap("tab10")
    for n, (m, fv) in enumerate(panels):
        ax = axes[n // ncols][n % ncols]
        sub = pf if facet is None else pf[pf[facet] == fv]
        if m in DRIFT_COLUMNS:
            sub = sub[regular_drift(sub)]
        for a, arm in enumerate(arms):
            s = sub[(sub[by] == arm) & sub[m].notna()] if m in sub else sub.iloc[:0]
            if s.empty:
                continue
            g = s.groupby(x)[m].agg(["mean", "std", "count"]).reset_index()
            ax.plot(g[x], g["mean"], "-", marker="osD^vP*Xh<>"[a % 11], ms=3.5, lw=1.3,
                    color=cmap(a % 10), label=str(arm))
            if (g["count"] > 1).any():
                sd = g["std"].fillna(0)
                ax.fill_between(g[x], g["mean"] - sd, g["mean"] + sd, color=cmap(a % 10), alpha=0.15, lw=0)
        ax.set_xlabel("optimiser step" if x == "step" else x.replace("_", " "), fontsize=9)
        ax.set_ylabel(textwrap.fill(labels.get(m, m), 30), fontsize=9)     # a long label on two lines
        if m in logy:
            ax.set_yscale("symlog", linthresh=1e-3)
        if logx:
            ax.set_xscale("log")
        if facet is not None and (n < ncols or len(metrics) == 1):
            ax.set_title(fv if isinstance(fv, str) else f"{facet.replace('num_codes', 'K')} = {fv}", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    for n in range(len(panels), nrows * ncols):
        axes[n // ncols][n % ncols].axis("off")
    if sharey:
        for m in metrics:
            drawn = [axes[n // ncols][n % ncols] for n, (pm, _) in enumerate(panels)
                     if pm == m and axes[n // ncols][n % ncols].has_data()]
            if len(drawn) > 1:
                lo, hi = min(ax.get_ylim()[0] for ax in drawn), max(ax.get_ylim()[1] for ax in drawn)
                for ax in drawn:
                    ax.set_ylim(lo, hi)
    handles, labels = [], []
    for ax in axes.flat:
        h, lab = ax.get_legend_handles_labels()
        if len(h) > len(handles):
            handles, labels = h, lab
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, (0.2 + 0.25 * legend_rows) / height, 1, 1))
    return fig


def plot_arm_pairs(df: pd.DataFrame, column: str, by: str, pair: str, order=None, pair_order=("off", "on")):
    """Per value of ``by``, the values of ``column`` for each value of ``pair`` side by side: one
    point per seed and a bar at the mean."""
    import matplotlib.pyplot as plt

    groups = list(order) if order is not None else sorted(df[by].dropna().unique())
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 3.4), dpi=110)
    cmap = plt.get_cmap("tab10")
    width = 0.8 / len(pair_order)
    for j, pv in enumerate(pair_order):
        for i, g in enumerate(groups):
            v = df[(df[by] == g) & (df[pair] == pv)][column].dropna()
            x = i + (j - (len(pair_order) - 1) / 2) * width
            if len(v):
                ax.bar(x, v.mean(), width * 0.9, color=cmap(j), alpha=0.35,
                       label=f"{pair} {pv}" if i == 0 else None)
                ax.plot([x] * len(v), v, "osD^"[j % 4], color=cmap(j), ms=4)
            else:
                ax.text(x, 0.02, "not run", rotation=90, ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.set_ylabel(column.replace("_", " "), fontsize=9)
    ax.set_ylim(0, 1.02 if "usage" in column else None)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


# -- verdicts ----------------------------------------------------------------------------------------
def _series(df: pd.DataFrame, column: str, **where) -> pd.Series:
    """Per-seed values of ``column`` in the rows matching ``where`` (rows without a value left out)."""
    s = df
    for k, v in where.items():
        s = s[s[k] == v]
    return V.per_seed(s[s[column].notna()], column)


def _paired_cells(df, claim, column, a: dict, b: dict, over: str, values, op=">", threshold=0.0):
    """One judge_difference per value of ``over``: column(a) - column(b) op threshold, by seed;
    cells where either side has no run are left out (and counted by judge_all's ``cells``)."""
    prof = single_profile(df)
    parts = []
    for v in values:
        sa, sb = _series(df, column, **a, **{over: v}), _series(df, column, **b, **{over: v})
        if len(sa) and len(sb) and len(sa.index.intersection(sb.index)):
            parts.append(V.judge_difference(f"{claim} ({over} {v})", sa, sb, op, threshold, prof))
    return parts


def _all(claim, parts, cells, side=""):
    """judge_all over the cells that have runs; a claim with none yet is listed as not judged."""
    if not parts:
        return V.not_run(claim, cells, side=side)
    return V.judge_all(claim, parts, cells, side=side)


def ablation_verdicts(df: pd.DataFrame) -> list:
    """Sec. 3.3's two mechanisms, in training: the kernel cross-update (paper flavour vs the released
    config with the kernel off) and the modified STE (paper flavour vs the kernel with the plain
    STE) each raise eval usage, at every K of the grid. The second is our reading: Sec. 3.3.3 claims
    stability under encoder drift, not usage."""
    from .grids import _mechanism_sizes

    sizes = _mechanism_sizes(single_profile(df) or "cpu")
    out = [_all("Sec. 3.3: the kernel cross-update raises eval usage over NS-VQ without it",
                _paired_cells(df, "usage(paper flavour) - usage(kernel off)", "eval_usage",
                              {"tag": "paper flavour"}, {"tag": "released config (kernel off, modified STE)"},
                              "num_codes", sizes), len(sizes)),
           _all("The modified STE raises eval usage over the plain STE (kernel on)",
                _paired_cells(df, "usage(paper flavour) - usage(plain STE)", "eval_usage",
                              {"tag": "paper flavour"}, {"tag": "kernel, plain STE"}, "num_codes", sizes),
                len(sizes), side=MODIFIED_STE_SIDE)]
    return out


def transvq_verdicts(df: pd.DataFrame) -> list:
    """Table 3 (K = 1024, D = 64): TransVQ (the paper's map) keeps (near) full usage, the paper's
    claim at this cell; ours: it keeps more of its codebook than SimVQ (the paper prints 1.00 for
    both); the paper's map against the authors' code's (which adds a learned position embedding);
    and the audit's prediction (ours): scaling the mapped codebook by 1/8 raises TransVQ's eval
    usage."""
    from .codebook_size import FULL_USAGE

    prof = single_profile(df)
    full = _series(df, "eval_usage", tag="TransVQ (paper)", num_codes=1024)
    claim = f"Table 3: TransVQ (the paper's map) uses >= {FULL_USAGE:.0%} of the codes"
    out = [_all(claim, [V.judge(f"{claim} (num_codes 1024)", full, ">=", FULL_USAGE, prof)] if len(full) else [], 1),
           _all("TransVQ (the paper's map) has higher eval usage than SimVQ (the paper prints 1.00 for both)",
                _paired_cells(df, "usage(TransVQ) - usage(SimVQ)", "eval_usage",
                              {"tag": "TransVQ (paper)"}, {"tag": "SimVQ"}, "num_codes", (1024,)), 1,
                side=OURS_SIDE),
           _all("Paper vs code: the paper's map (no position embedding) has higher eval usage than the "
                "authors' code's map",
                _paired_cells(df, "usage(paper map) - usage(authors' map)", "eval_usage",
                              {"tag": "TransVQ (paper)"}, {"tag": "TransVQ + position embedding (authors' code)"},
                              "num_codes", (1024,)), 1, side=PAPER_VS_CODE_SIDE),
           _all("Audit (ours): the mapped codebook x 1/8 raises TransVQ's eval usage over the paper's map",
                _paired_cells(df, "usage(x 1/8) - usage(paper map)", "eval_usage",
                              {"tag": "TransVQ, codebook x 1/8 (ours)"}, {"tag": "TransVQ (paper)"},
                              "num_codes", (1024,)), 1, side=OURS_SIDE)]
    return out


#: the two maps :func:`transvq_init_pull` compares: label -> ``position_embedding``
TRANSVQ_INIT_MAPS = {"paper's map": False, "authors' map (+ position embedding)": True}


def transvq_init_pull(seeds=range(5), num_codes: int = 1024, code_dim: int = 64, width: float = 0.25,
                      n_images: int = 256, batch_size: int = 16, steps: int = 20, lr: float = 5e-4) -> pd.DataFrame:
    """At the start of training, how strongly TransVQ's map moves the codes no latent selects, with the
    paper's map and with the authors' (which adds a learned per-code position embedding, N(0, 1)).

    Eq. 22's promise is that a shared map moves every code with every update. Per seed (the map's
    initialisation and the batches): the latents of a fresh Table-1 encoder (``width``, seed 0, frozen:
    only the map trains here) on ``n_images`` Fashion-MNIST 32x32 images; ``steps`` Adam steps of the
    quantizer's loss (Eq. 25 + commitment) at training's learning rate on batches of ``batch_size``
    images; the last step measured. One row per (seed, map): the RMS and the participation ratio of the
    transformer block's input tokens (the projected base codes span at most D of the block's m
    dimensions; the embedding spans all m); the RMS of the projected base codes and of the embedding;
    how many codes the last batch selects; how far one step moves a selected and an unselected code;
    and their ratio (``coupling``: how much of a step reaches the codes no latent selected).
    """
    import torch

    from ..metrics.latent import participation_ratio
    from ..quantizers import build_quantizer
    from ..theory._common import load_images, make_encoder

    enc = make_encoder(code_dim, width, seed=0)
    with torch.no_grad():
        z = enc(load_images(n_images, 32, seed=0))
    rows = []
    for seed in seeds:
        for label, pe in TRANSVQ_INIT_MAPS.items():
            torch.manual_seed(seed)
            q = build_quantizer("transvq", num_codes=num_codes, code_dim=code_dim, position_embedding=pe)
            m = q.mapper
            with torch.no_grad():
                base = m.inp(q.base)
                tokens = m.tokens(q.base)
                row = {"seed": seed, "map": label, "token_rms": float(tokens.pow(2).mean().sqrt()),
                       "token_dims": participation_ratio(tokens),
                       "input_rms_base": float(base.pow(2).mean().sqrt()),
                       "input_rms_embedding": float(m.pos.weight.pow(2).mean().sqrt()) if pe else float("nan")}
            opt = torch.optim.Adam([p for p in q.parameters() if p.requires_grad], lr=lr)
            g = torch.Generator().manual_seed(20_000 + seed)
            for step in range(steps):
                out = q(z[torch.randint(0, n_images, (batch_size,), generator=g)])
                if step == steps - 1:              # the measured step: the codebook before it
                    with torch.no_grad():
                        c0 = q.codebook.clone()
                opt.zero_grad()
                out.loss.backward()
                opt.step()
            selected = torch.zeros(num_codes, dtype=torch.bool)
            selected[out.indices.reshape(-1).unique()] = True
            with torch.no_grad():
                move = (q.codebook - c0).norm(dim=1)
            row.update(codes_selected=int(selected.sum()), move_selected=float(move[selected].mean()),
                       move_unselected=float(move[~selected].mean()))
            row["coupling"] = row["move_unselected"] / row["move_selected"]
            rows.append(row)
    return pd.DataFrame(rows)


def transvq_init_table(pull: pd.DataFrame) -> pd.DataFrame:
    """:func:`transvq_init_pull`'s rows as mean ± sd over seeds, one column per map."""
    cols = {"token_rms": "block input tokens: RMS", "token_dims": "block input tokens: participation ratio",
            "input_rms_base": "  of which projected base codes: RMS",
            "input_rms_embedding": "  of which position embedding: RMS",
            "codes_selected": "codes selected by the last batch", "move_selected": "one step: move of a selected code",
            "move_unselected": "one step: move of an unselected code",
            "coupling": "coupling (unselected move / selected move)"}
    out = []
    for label in TRANSVQ_INIT_MAPS:
        sub = pull[pull["map"] == label]
        out.append({"map": label, **{name: (mean_sd_text(sub[c]) if sub[c].notna().any() else "-")
                                     for c, name in cols.items()}})
    return pd.DataFrame(out).set_index("map").T


def replacement_frame(df: pd.DataFrame, off: pd.DataFrame) -> pd.DataFrame:
    """The replacement grid's runs plus the "off" arms borrowed from the codebook_size grid (K = 1024,
    D = 64, the same scale: epochs, width, images, batch, warm-up, learning rate;
    ``grids.REPLACEMENT_OFF_IN_CODEBOOK_SIZE``), with a ``replacement`` column (on / off)."""
    from .grids import REPLACEMENT_OFF_IN_CODEBOOK_SIZE

    on = df.copy()
    on["replacement"] = ["on" if "replacement" in str(t) else "off" for t in on["tag"]]
    borrowed = off[(off["num_codes"] == 1024) & (off["code_dim"] == 64)
                   & off["tag"].isin(list(REPLACEMENT_OFF_IN_CODEBOOK_SIZE.values()))].copy()
    # only runs at the same scale (the ci codebook_size grid trains one epoch, the replacement grid two)
    scale = [c for c in ("epochs", "width", "train_images", "eval_images", "batch_size", "warmup_steps", "lr")
             if c in on and c in borrowed]
    same = set(map(tuple, on[scale].fillna(-1).to_numpy().tolist()))
    keep = [tuple(r) in same for r in borrowed[scale].fillna(-1).to_numpy().tolist()]
    borrowed = borrowed.loc[pd.Series(keep, index=borrowed.index, dtype=bool)]    # (df[[]] would drop the columns)
    borrowed["replacement"] = "off"
    borrowed["tag"] = [f"{q}" for q in borrowed["quantizer"]]
    both = pd.concat([on, borrowed], ignore_index=True)
    both["method"] = both["quantizer"]
    return both


def replacement_runs(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """:func:`replacement_frame` of the replacement grid's runs ``df`` with the committed codebook_size
    runs of the same ``profile`` (none when that grid has no runs there)."""
    from .runner import load_grid

    try:
        off, _ = load_grid("codebook_size", profile)
    except FileNotFoundError:
        off = df.iloc[:0]
    return replacement_frame(df, off)


def replacement_verdicts(rf: pd.DataFrame) -> list:
    """Follow-up paper (seeds/001): dead-code replacement raises eval usage, for each method."""
    from .grids import REPLACEMENT_METHODS

    parts = _paired_cells(rf, "usage(replacement on) - usage(off)", "eval_usage", {"replacement": "on"},
                          {"replacement": "off"}, "method", REPLACEMENT_METHODS)
    v = _all("Dead-code replacement raises eval usage for every method", parts, len(REPLACEMENT_METHODS), side=OURS_SIDE)
    return [v] if v is not None else []


#: the causes page's claims (seed 003), by key; a width claim's text gets "(width W vs w)" appended
CAUSE_CLAIMS = {
    "init": "Early-quantization study: a data-driven init (k-means on the untrained encoder's latents) "
            "raises eval usage over the random uniform init (vq, nsvq)",
    "width_usage": "Early-quantization study: a wider backbone raises eval usage",
    "width_rank": "Early-quantization study: a wider backbone's latents spread over more directions "
                  "(participation ratio, our proxy for its embedding collapse)",
}


def causes_verdicts(df: pd.DataFrame, pf_last: pd.DataFrame) -> list:
    """Seed 003's two causes (Zhao et al., "Early Quantization Shrinks Codebook"): (1) random
    initialisation causes token collapse, tested as: a data-driven init (k-means on the untrained
    encoder's latents, ``grids.CAUSE_KMEANS_IMAGES`` images) raises eval usage over the uniform init,
    for vq and nsvq at every width; (2) limited capacity causes collapse: the widest backbone (encoder
    and decoder: ``width`` scales both) raises eval usage over the narrowest, for every arm; (3) its
    latents spread over more directions (higher latent participation ratio at the last probe, our
    proxy for the study's "embedding collapse")."""
    from .grids import CAUSE_ARMS, CAUSE_WIDTHS

    prof = single_profile(df) or "cpu"
    widths = CAUSE_WIDTHS.get(prof, (0.25,))
    d = df.merge(pf_last[["config_hash", "latent_rank"]], on="config_hash", how="left") if not pf_last.empty \
        else df.assign(latent_rank=float("nan"))
    d["init"] = d["quantizer_options.init"].fillna("uniform") if "quantizer_options.init" in d else "uniform"
    d["arm"] = [f"{q} {i} init" if q != "simvq" else "simvq" for q, i in zip(d["quantizer"], d["init"])]
    out = []
    parts = []
    for q in ("vq", "nsvq"):
        parts += _paired_cells(d[d.quantizer == q], f"usage(k-means init) - usage(uniform), {q}", "eval_usage",
                               {"init": "kmeans"}, {"init": "uniform"}, "width", widths)
    out.append(_all(CAUSE_CLAIMS["init"], parts, 2 * len(widths)))
    if len(widths) > 1:
        arms = sorted({f"{q} {i} init" if i else q for q, i in CAUSE_ARMS})
        wide, narrow = widths[-1], widths[0]
        for col, claim in (("eval_usage", CAUSE_CLAIMS["width_usage"]), ("latent_rank", CAUSE_CLAIMS["width_rank"])):
            parts = _paired_cells(d, f"{col}(w {wide:g}) - {col}(w {narrow:g})", col,
                                  {"width": wide}, {"width": narrow}, "arm", arms)
            out.append(_all(f"{claim} (width {wide:g} vs {narrow:g})", parts, len(arms)))
    return out


STAGED_ORDER = ("SimVQ", "NS-VQ", "NS-VQ +a", "NS-VQ +a+b", "NS-VQ +a+b+c", "NS-VQ +a+b+c (fixed)")

#: the staged page's claims, by key: the follow-up paper's (full utilisation; better than SimVQ on
#: each metric) and ours, one stage at a time
STAGED_CLAIMS = {
    "full": "NSVQ follow-up: the staged schedule reaches near-full codebook utilisation (eval usage > 0.9)",
    "fd": "NSVQ follow-up: the staged schedule reconstructs better than SimVQ (FD, lower is better)",
    "psnr": "NSVQ follow-up: the staged schedule reconstructs better than SimVQ (PSNR)",
    "lpips": "NSVQ follow-up: the staged schedule reconstructs better than SimVQ (LPIPS, lower is better; "
             "stage (c) trains on LPIPS, SimVQ does not)",
    "a": "Stage (a): dead-code replacement raises NS-VQ's eval usage",
    "b": "Stage (b): freezing the encoder lowers the FD over the arm before it",
    "c": "Stage (c): adversarial refinement lowers the FD over the arm before it",
    "c_weight": "Stage (c): VQGAN's adaptive GAN weight gives a lower FD than a fixed weight of 0.1",
}


def staged_verdicts(df: pd.DataFrame) -> list:
    """The follow-up paper's claims (seed 001), at every K of the ``staged`` grid: the full staged
    schedule (+a+b+c) reaches (near-)full utilisation (eval usage > 0.9) and reconstructs better than
    SimVQ, paired by seed: on the FD (the stand-in for its rFID), PSNR and LPIPS (which stage (c)
    trains on, so that comparison favours it; said in the claim). Then ours, one stage at a time:
    (a) raises eval usage over NS-VQ, (b) and (c) each lower the FD over the arm before them."""
    from .grids import STAGED_SIZES

    prof = single_profile(df)
    sizes = STAGED_SIZES
    usage = {k: _series(df, "eval_usage", tag="NS-VQ +a+b+c", num_codes=k) for k in sizes}
    full = [V.judge(f"eval usage of NS-VQ +a+b+c > 0.9 (num_codes {k})", u, ">", 0.9, prof)
            for k, u in usage.items() if len(u)]
    full_arm, simvq = {"tag": "NS-VQ +a+b+c"}, {"tag": "SimVQ"}
    out = [_all(STAGED_CLAIMS["full"], full, len(sizes))]
    if "fd" in df:
        out.append(_all(STAGED_CLAIMS["fd"],
                        _paired_cells(df, "FD(SimVQ) - FD(+a+b+c)", "fd", simvq, full_arm, "num_codes", sizes),
                        len(sizes)))
    out.append(_all(STAGED_CLAIMS["psnr"],
                    _paired_cells(df, "PSNR(+a+b+c) - PSNR(SimVQ)", "psnr", full_arm, simvq, "num_codes", sizes),
                    len(sizes)))
    if "lpips" in df:
        out.append(_all(STAGED_CLAIMS["lpips"],
                        _paired_cells(df, "LPIPS(SimVQ) - LPIPS(+a+b+c)", "lpips", simvq, full_arm, "num_codes",
                                      sizes), len(sizes)))
    out.append(_all(STAGED_CLAIMS["a"],
                    _paired_cells(df, "usage(+a) - usage(NS-VQ)", "eval_usage", {"tag": "NS-VQ +a"},
                                  {"tag": "NS-VQ"}, "num_codes", sizes), len(sizes), side=OURS_SIDE))
    if "fd" in df:
        for arm, before, key in (("NS-VQ +a+b", "NS-VQ +a", "b"), ("NS-VQ +a+b+c", "NS-VQ +a+b", "c")):
            out.append(_all(STAGED_CLAIMS[key],
                            _paired_cells(df, f"FD({before}) - FD({arm})", "fd", {"tag": before}, {"tag": arm},
                                          "num_codes", sizes), len(sizes), side=OURS_SIDE))
        fixed, adaptive = "NS-VQ +a+b+c (fixed)", "NS-VQ +a+b+c"
        out.append(_all(STAGED_CLAIMS["c_weight"],
                        _paired_cells(df, f"FD({fixed}) - FD({adaptive})", "fd", {"tag": fixed}, {"tag": adaptive},
                                      "num_codes", sizes), len(sizes), side=OURS_SIDE))
    return out


# -- the pages' verdicts from committed data (the introduction's table) ------------------------------
def causes_start() -> dict | None:
    """:func:`start_kept` of the k-means starts in the committed ``causes`` runs (FileNotFoundError
    when the grid has none)."""
    from .runner import load_grid

    df, _ = load_grid("causes")
    return start_kept(probe_frame(df))


def page_verdicts(page: str) -> tuple[list, object]:
    """(verdicts, GridSource) of a mechanism page from the committed records (``load_grid`` at
    ``auto``), computed as the page computes them. Raises FileNotFoundError when the page's grid
    has no committed run."""
    from . import batch_size as bs
    from .runner import load_grid

    df, src = load_grid(page)
    if page == "nsvq_ablation":
        return ablation_verdicts(df), src
    if page == "transvq_diagnosis":
        return transvq_verdicts(df), src
    if page == "batch_steps":
        return bs.arm_verdicts(bs.arm_frames(src.profile)), src
    if page == "replacement":
        return replacement_verdicts(replacement_runs(df, src.profile)), src
    if page == "causes":
        return causes_verdicts(df, last_probe(probe_frame(df))), src
    if page == "staged":
        return staged_verdicts(df), src
    raise ValueError(f"{page!r} is not a mechanism page; expected one of {MECHANISM_PAGES}")


MECHANISM_PAGES = ("nsvq_ablation", "transvq_diagnosis", "batch_steps", "replacement", "causes", "staged")
