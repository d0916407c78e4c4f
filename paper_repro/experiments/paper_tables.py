"""The paper's own numbers (Tables 2, 3, 4 and 6), transcribed in ``data/paper/tables.csv``.

These are labelled "paper" wherever they appear. This module loads them tidily, lays them out as the
paper prints them, and checks the paper's internal consistency (Table 4 claims to list each method's
best-rFID configuration of Tables 2 and 3).
"""
from __future__ import annotations

import pandas as pd

from ..paths import PAPER_DATA_DIR

PAPER_TABLES = (2, 3, 4, 6)
_METHOD_ORDER = ["VQGAN", "VQGAN-FC", "VQVAE2", "VQGAN-EMA", "SimVQ", "NS-VQ", "TransVQ"]
CAPTIONS = {
    2: "Table 2 (paper): CelebA-HQ, 3-D codes, rFID (lower is better) and codebook usage by codebook size.",
    3: "Table 3 (paper): CelebA-HQ, 64-D codes, rFID (lower is better) and codebook usage by codebook size.",
    4: "Table 4 (paper): CelebA-HQ, each method at its best configuration of Tables 2-3: SSIM, LPIPS, rFID.",
    6: "Table 6 (paper, Supp. 12): ImageNet-1K 256x256, rFID and LPIPS.",
}


def load_paper_tables(path=None) -> pd.DataFrame:
    """All transcribed numbers, one row per number, with a ``source`` column and ``origin='paper'``."""
    path = path or PAPER_DATA_DIR / "tables.csv"
    if not path.exists():
        raise FileNotFoundError(f"transcribed paper tables not found at {path}")
    df = pd.read_csv(path, dtype={"note": str}, keep_default_na=False)
    for col in ("codebook_size", "code_dim"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    df["value"] = df["value"].astype(float)
    df["origin"] = "paper"
    return df


def paper_table(number: int, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """One table in the paper's own layout (methods as rows), values formatted as printed."""
    if number not in PAPER_TABLES:
        raise ValueError(f"the paper has numeric tables {PAPER_TABLES}; got {number!r}")
    df = load_paper_tables() if df is None else df
    t = df[df["table"] == number].copy()
    t["shown"] = [f"{v:.{d}f}" for v, d in zip(t["value"], t["decimals"])]
    order = [m for m in _METHOD_ORDER if m in set(t["method"])]
    if number in (2, 3):
        wide = t.pivot(index="method", columns=["codebook_size", "metric"], values="shown")
        wide = wide.reindex(columns=sorted(wide.columns, key=lambda c: (c[0], c[1] != "rFID")))
        wide.columns = pd.MultiIndex.from_tuples([(f"K = {k}", m) for k, m in wide.columns])
    elif number == 4:
        wide = t.pivot(index=["method", "codebook_size", "code_dim"], columns="metric", values="shown")
        wide = wide[["SSIM", "LPIPS", "rFID"]].reset_index(level=[1, 2])
        wide.columns = ["Codebook size", "Code dim", "SSIM", "LPIPS", "rFID"]
    else:
        wide = t.pivot(index="method", columns="metric", values="shown")[["rFID", "LPIPS"]]
    wide.columns.name = None
    return wide.reindex(order)


def table4_consistency(df: pd.DataFrame | None = None) -> pd.DataFrame:
    """For each method of Table 4, its Table-4 rFID and configuration next to the best rFID over
    Tables 2 and 3, and whether they agree (the caption of Table 4 says they should)."""
    df = load_paper_tables() if df is None else df
    grid = df[df["table"].isin([2, 3]) & (df["metric"] == "rFID")]
    best = grid.loc[grid.groupby("method")["value"].idxmin()].set_index("method")
    t4 = df[(df["table"] == 4) & (df["metric"] == "rFID")].set_index("method")
    out = pd.DataFrame({
        "table4_K": t4["codebook_size"], "table4_D": t4["code_dim"], "table4_rFID": t4["value"],
        "best_K": best["codebook_size"], "best_D": best["code_dim"], "best_rFID": best["value"],
    })
    out["agrees"] = ((out["table4_K"] == out["best_K"]) & (out["table4_D"] == out["best_D"])
                     & (out["table4_rFID"] == out["best_rFID"]))
    return out.reindex([m for m in _METHOD_ORDER if m in out.index])


def plot_paper_grid(df: pd.DataFrame | None = None):
    """Figure-3-style plot of the paper's Tables 2-3: rFID and usage against codebook size, one panel
    per code dimension. Values are the paper's (transcribed), not recomputed."""
    import matplotlib.pyplot as plt

    df = load_paper_tables() if df is None else df
    grid = df[df["table"].isin([2, 3])]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    for col, dim in enumerate((3, 64)):
        for row, metric in enumerate(("rFID", "usage")):
            ax = axes[row, col]
            sub = grid[(grid["code_dim"] == dim) & (grid["metric"] == metric)]
            for method in [m for m in _METHOD_ORDER if m in set(sub["method"])]:
                s = sub[sub["method"] == method].sort_values("codebook_size")
                ours = method in ("NS-VQ", "TransVQ")
                ax.plot(s["codebook_size"].astype(int), s["value"], marker="o", label=method,
                        lw=2.2 if ours else 1.2, ls="-" if ours else "--")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{metric}, {dim}-D codes (paper, CelebA-HQ)")
            if metric == "rFID":
                ax.set_yscale("log")
            ax.set_xlabel("codebook size K (as printed: 64, 1024, 8912)")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=9)
    fig.tight_layout()
    return fig
