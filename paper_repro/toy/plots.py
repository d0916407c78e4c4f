"""Plot helpers for the Supp. 11 toy demos (Figures 1, 6, 7).

Colours follow Figure 1's caption: purple = target ``Y_t``, green = base data ``X``, blue = current
batch ``X_b``, red crosses = codebook ``C``. We also draw the full drifted cloud in light grey.
"""
from __future__ import annotations

import numpy as np

from .demos import FIGURE_ROW_ORDER, ToyResult, run


def draw_snapshot(ax, snap, title: str | None = None, show_legend: bool = False) -> None:
    """One panel: target, base data, drifted cloud, current batch, codebook."""
    ax.scatter(*snap.target.T, s=2, c="#9467bd", alpha=0.15, label="target $Y_t$")
    ax.scatter(*snap.base.T, s=2, c="#2ca02c", alpha=0.15, label="base $X$")
    ax.scatter(*snap.cloud.T, s=2, c="0.6", alpha=0.25, label="drifted cloud")
    if len(snap.batch):
        ax.scatter(*snap.batch.T, s=6, c="#1f77b4", alpha=0.8, label="batch $X_b$")
    ax.scatter(*snap.codebook.T, s=40, c="red", marker="x", linewidths=1.5, label="codes $C$")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if show_legend:
        ax.legend(fontsize=9, loc="best", markerscale=2)


def snapshot_grid(results: list[ToyResult], row_labels: list[str] | None = None, suptitle: str = ""):
    """Rows = results, columns = their snapshots (Figures 6/7 layout: 4 rows x 5 snapshots)."""
    import matplotlib.pyplot as plt

    n_rows = len(results)
    n_cols = max(len(r.snapshots) for r in results)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.0 * n_cols, 2.0 * n_rows), squeeze=False)
    for i, res in enumerate(results):
        for j in range(n_cols):
            ax = axes[i, j]
            if j >= len(res.snapshots):
                ax.axis("off")
                continue
            s = res.snapshots[j]
            draw_snapshot(ax, s, title=f"step {s.step}", show_legend=(i == 0 and j == 0))
        label = row_labels[i] if row_labels else f"{res.scenario}\nusage {res.usage:.2f}"
        axes[i, 0].set_ylabel(label, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def figure_6_7(rule: str, seed: int = 0, **overrides):
    """Figure 6 (``rule="ema"``) or Figure 7 (``rule="nsvq"``): rows translation, shrink, split, expansion."""
    results = [run(s, rule, seed, **overrides) for s in FIGURE_ROW_ORDER]
    return snapshot_grid(results), results


def figure_1(scenario: str = "translation", seed: int = 0, **overrides):
    """Figure 1: final state of EMA / NS-VQ / TransVQ on one scenario, side by side."""
    import matplotlib.pyplot as plt

    results = [run(scenario, r, seed, **overrides) for r in ("ema", "nsvq", "transvq")]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.5))
    for ax, res, tag in zip(axes, results, "abc"):
        draw_snapshot(ax, res.snapshots[-1], show_legend=(tag == "a"))
        ax.set_title(f"({tag}) {res.rule}: usage {res.usage:.2f}, distortion {res.distortion:.2f}", fontsize=9)
    fig.tight_layout()
    return fig, results


def animation_html(scenario: str = "shrink", seed: int = 0, rules=("ema", "nsvq"), frames: int = 25,
                   dpi: int = 80, **overrides) -> str:
    """Small side-by-side animation (like the surviving shrink video) as ``to_jshtml()`` HTML: a
    frames player (play, step, loop) with the PNG frames embedded, ``frames`` snapshots at ``dpi``."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    results = [run(scenario, r, seed, n_snapshots=frames, **overrides) for r in rules]
    fig, axes = plt.subplots(1, len(rules), figsize=(3.2 * len(rules), 3.2), squeeze=False, dpi=dpi)
    axes = axes[0]
    allpts = np.concatenate([s.cloud for s in results[0].snapshots] + [s.codebook for r in results
                                                                       for s in r.snapshots])
    lo, hi = allpts.min(0) - 0.5, allpts.max(0) + 0.5

    def draw(k):
        for ax, res in zip(axes, results):
            ax.clear()
            snap = res.snapshots[min(k, len(res.snapshots) - 1)]
            draw_snapshot(ax, snap, title=f"{res.rule}, step {snap.step}")
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
        return []

    anim = FuncAnimation(fig, draw, frames=len(results[0].snapshots), interval=250)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return html
