"""Sec. 3.3.2, Eq. 16-17: NS-VQ's kernel cross-update climbs a kernel density estimate of the latents.

Summed over a batch, Eq. 16 moves a code ``c_j`` by ``sum_i w_ij (z_i - c_j)`` over the latents it
does not win, with ``w_ij = exp(-||z_i - c_j||^2 / h)`` and ``h = 2 sigma^2``. That is, up to a
positive factor, the gradient of the (unnormalised) Gaussian kernel density estimate of those latents,

    p_j(c) = sum_{i: q_i != j} exp(-||z_i - c||^2 / h),   grad p_j(c) = (2 / h) sum_i w_ij (z_i - c),

so the package's kernel loss (``nsvq.py``: ``kernel_coef / (N D) sum w_ij ||sg(z_i) - c_j||^2``, the
weights constant) has the codebook gradient ``dL/dc_j = -(kernel_coef h / (N D)) grad p_j(c_j)``
exactly, and a plain gradient step of size ``N D / (2 kernel_coef p_j(c_j))`` is one step of the
mean-shift algorithm (Fukunaga & Hostetler 1975; Cheng 1995): ``c_j <- sum_i w_ij z_i / sum_i w_ij``.
A code that wins nothing therefore climbs to a mode of the latents' density at bandwidth ``h``, and
every code in the same basin climbs to the *same* mode: the codes merge. Where the codes end is set
by the latents and ``h`` far more than by K; a code that wins latents is also held by its own
k-means term, so the count in use is not the number of modes (our reading; the paper presents the
update as propagating encoder drift to the codes, Sec. 3.3.2).

The study tests that consequence without an encoder, as :mod:`.kmeans_reach` does: the "latents" are
a fixed data set (8 Gaussian blobs in 2-D, 1,024 points, drawn per seed), and NS-VQ's quantizer
(paper flavour, 2 sigma^2 held fixed: ``kernel_decay=1``) trains its codebook alone on its own loss,
full batch, Adam; the control is the same quantizer with the kernel off (plain VQ's codebook term).
Per run: ``used`` (codes nearest to some datum), ``stacked`` (fraction of the K codes within
``STACK_TOL`` data spreads of another code) and ``modes`` (the modes of the data's kernel density at
that bandwidth, found by mean shift from every datum; NaN with the kernel off).
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from ..metrics.latent import STACK_TOL, stacked_fraction
from ..metrics.latent import rms_spread as spread
from ..quantizers import build_quantizer
from ..study import Study
from ._common import assign
from .kmeans_reach import make_data

#: arm -> 2 sigma^2 of the kernel (None: the kernel off, the control)
ARMS: dict[str, float | None] = {"kernel off": None, "2σ² = 0.01": 0.01, "2σ² = 0.1": 0.1, "2σ² = 1": 1.0}
#: the codebook sizes of the study (a factor 16 between the ends)
SIZES = (16, 64, 256)
#: the two starts: NS-VQ's default (all codes in a tiny ball, U(+-1/K)) and k-means on the data
INITS = ("uniform", "kmeans")
# ``STACK_TOL`` (from metrics.latent): two codes are "stacked" when closer than this many data spreads
# (RMS distance of the data from their mean); a mode found by mean shift is one point within it too.

#: the data: 8 blobs of std 0.15 at random centres in [-1, 1]^2 (:func:`kmeans_reach.make_data`)
DATA = {"dim": 2, "n": 1024, "clusters": 8, "spread": 0.15}


# -- the identity ----------------------------------------------------------------------------------
def kernel_weights(z: torch.Tensor, c: torch.Tensor, width: float,
                   exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``w_ij = exp(-||z_i - c_j||^2 / width)`` (N, K) for latents ``z`` (N, D) and codes ``c`` (K, D)
    (differentiable in both); with ``exclude`` (N,) int64, ``w_ij = 0`` where ``exclude[i] == j`` (the
    winner's own latents, as in Eq. 16)."""
    w = torch.exp(-((z[:, None, :] - c[None, :, :]) ** 2).sum(-1) / width)
    if exclude is not None:
        w = w.masked_fill(exclude[:, None] == torch.arange(c.shape[0], device=c.device)[None, :], 0.0)
    return w


def kde(z: torch.Tensor, c: torch.Tensor, width: float, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``p_j(c_j) = sum_i exp(-||z_i - c_j||^2 / width)`` for every row ``c_j`` of ``c`` (K,), over
    the latents ``z`` (N, D), the winner's own left out with ``exclude`` (:func:`kernel_weights`)."""
    return kernel_weights(z, c, width, exclude).sum(0)


def kernel_gradient_check(num_codes: int = 32, n: int = 512, width: float = 0.1, seed: int = 0) -> dict:
    """NS-VQ's loss (the package's, paper flavour) against the density identity, on blob data.

    The codebook gradient of the quantizer's loss (its closed-form backward) must equal the gradient,
    by autograd in float64, of ``(1/(N D)) sum_i ||c_{q_i} - z_i||^2 - (kernel_coef h / (N D))
    sum_j p_j(c_j)`` with the winners ``q`` fixed: the winner's mean-squared term plus the density
    written out (an independent reference). Returns the largest error relative to the largest
    reference gradient (``max_rel_error``) and the mean-shift check: from every code, a plain
    gradient step of the kernel term alone (the loss's gradient less the winner's term) of size
    ``N D / (2 kernel_coef p_j)`` lands on ``sum_i w_ij z_i / sum_i w_ij`` (``meanshift_step_error``:
    the largest miss in data spreads)."""
    x = make_data(DATA["dim"], n=n, clusters=DATA["clusters"], spread=DATA["spread"], seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    c0 = x[torch.randperm(n, generator=g)[:num_codes]] + 0.05 * torch.randn(num_codes, x.shape[1], generator=g)
    q = build_quantizer("nsvq", num_codes, x.shape[1], kernel_width=width, kernel_decay=1.0)
    with torch.no_grad():
        q.embedding.copy_(c0)
    q.train()
    (grad,) = torch.autograd.grad(q(x[:, :, None, None]).loss, q.embedding)
    grad = grad.double()
    xd, idx = x.double(), assign(x.double(), c0.double())
    coef, nd = q.kernel_coef, n * x.shape[1]
    c = c0.double().clone().requires_grad_(True)
    p = kde(xd, c, width, exclude=idx)
    reference = (c[idx] - xd).pow(2).sum() / nd - (coef * width / nd) * p.sum()
    (ref,) = torch.autograd.grad(reference, c)
    rel = float((grad - ref).norm(dim=1).max() / ref.norm(dim=1).max())
    with torch.no_grad():
        winner = torch.zeros_like(ref).index_add_(0, idx, 2.0 * (c0.double()[idx] - xd) / nd)
        stepped = c0.double() - (nd / (2 * coef * p.detach()))[:, None] * (grad - winner)
        w = kernel_weights(xd, c0.double(), width, exclude=idx)
        target = (w.t() @ xd) / w.sum(0)[:, None]
        ms_err = float((stepped - target).norm(dim=1).max()) / spread(xd)
    return {"max_rel_error": rel, "meanshift_step_error": ms_err}


# -- the study -------------------------------------------------------------------------------------
def group_points(x: torch.Tensor, tol: float) -> tuple[torch.Tensor, list[int]]:
    """Rows of ``x`` grouped greedily in row order: a row within ``tol`` of a group's first row joins
    the first such group, else starts one. (the groups' first rows (M, D) float64, their sizes)."""
    reps: list[torch.Tensor] = []
    sizes: list[int] = []
    for v in x.double():
        near = (torch.stack(reps).sub(v).norm(dim=1) < tol).nonzero() if reps else []
        if len(near):
            sizes[int(near[0])] += 1
        else:
            reps.append(v)
            sizes.append(1)
    return (torch.stack(reps) if reps else x.double()[:0]), sizes


def distinct_points(x: torch.Tensor, tol: float) -> torch.Tensor:
    """One row per distinct place of ``x`` (the first row of each :func:`group_points` group)."""
    return group_points(x, tol)[0]


def kde_mode_points(x: torch.Tensor, width: float, iters: int = 1000, tol: float = STACK_TOL) -> torch.Tensor:
    """The modes of the Gaussian kernel density of ``x`` at ``width`` = 2 sigma^2 (M, D): mean shift
    from every row until no point moves by more than 1e-9 data spreads, then the end points merged
    within ``tol`` data spreads (:func:`distinct_points`)."""
    z = x.double()
    s = spread(z)
    p = z.clone()
    for _ in range(iters):
        w = kernel_weights(z, p, width)                 # (data, points)
        nxt = (w.t() @ z) / w.sum(0)[:, None]
        moved = float((nxt - p).norm(dim=1).max())
        p = nxt
        if moved < 1e-9 * s:
            break
    return distinct_points(p, tol * s)


def kde_modes(x: torch.Tensor, width: float, iters: int = 1000, tol: float = STACK_TOL) -> int:
    """The number of :func:`kde_mode_points`."""
    return len(kde_mode_points(x, width, iters, tol))


def fit(x: torch.Tensor, num_codes: int, width: float | None, init: str, steps: int = 2000,
        lr: float = 1e-2, seed: int = 0) -> torch.Tensor:
    """NS-VQ's codebook trained alone on the fixed data ``x`` (full batch, Adam), the kernel at
    ``width`` = 2 sigma^2 held fixed, or off (``width`` None); returns the codes (K, D)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    torch.manual_seed(seed)
    q = build_quantizer("nsvq", num_codes, x.shape[1], kernel=width is not None,
                        kernel_width=1.0 if width is None else width, kernel_decay=1.0, init=init)
    q.train()
    z = x[:, :, None, None]
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    for _ in range(steps):
        loss = q(z).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return q.codebook.detach().clone()


def study(seeds=(0, 1), sizes=SIZES, arms=tuple(ARMS), inits=INITS, steps: int = 2000, lr: float = 1e-2,
          progress: bool = False) -> pd.DataFrame:
    """One row per (init, arm, K, seed): ``used``, ``usage`` (used / K), ``stacked``, ``modes``.
    Each seed draws its own data (and initialises the codes with the same seed)."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; expected some of {list(ARMS)}")
    cells = [(s, i, a, k) for s in seeds for i in inits for a in arms for k in sizes]
    if progress:
        from tqdm.auto import tqdm
        cells = tqdm(cells, desc="mean-shift study", unit="fit")
    rows, data, modes = [], {}, {}
    for s, init, arm, k in cells:
        if s not in data:
            data[s] = make_data(DATA["dim"], n=DATA["n"], clusters=DATA["clusters"], spread=DATA["spread"], seed=s)
        x, width = data[s], ARMS[arm]
        if width is not None and (s, width) not in modes:
            modes[s, width] = kde_modes(x, width)
        c = fit(x, k, width, init, steps, lr, s)
        used = assign(x.double(), c.double()).unique().numel()
        rows.append({"init": init, "arm": arm, "K": k, "seed": s, "used": used, "usage": used / k,
                     "stacked": stacked_fraction(c, STACK_TOL * spread(x)),
                     "modes": float(modes[s, width]) if width is not None else math.nan})
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds per (init, arm, K)."""
    return (df.groupby(["init", "arm", "K"], sort=False)
            .agg(used=("used", "mean"), used_sd=("used", "std"), usage=("usage", "mean"),
                 stacked=("stacked", "mean"), modes=("modes", "mean"), seeds=("seed", "nunique"))
            .reset_index())


#: the claims are judged at the k-means start (the control keeps every code there) and these sizes
JUDGED_INIT, JUDGED_K, SMALLER_K = "kmeans", 256, 64
#: the control "keeps every code" above this usage; the kernel "stacks most of the codebook" above
#: this fraction
KEEPS, STACKS = 0.9, 0.5


def claim_verdicts(df: pd.DataFrame) -> list:
    """Our reading of Eq. 16 as mean shift, judged by the one rule over seeds on fixed data at the
    k-means start: the control (kernel off) keeps its codes; the kernel leaves fewer in use and
    stacks the rest on others; the count in use does not grow from K = 64 to 256; and a wider kernel
    leaves fewer. All ours: the paper makes no claim about these (Sec. 3.3.2 presents the update as
    propagating encoder drift to the codes)."""
    from .. import verdict as V

    def per_seed(arm: str, k: int, column: str = "used"):
        s = df[(df["init"] == JUDGED_INIT) & (df["arm"] == arm) & (df["K"] == k)]
        return V.per_seed(s, column)

    k, small = JUDGED_K, SMALLER_K
    out = [V.judge(f"Control: with the kernel off, VQ's codebook keeps its codes in use on fixed latents "
                   f"(usage > {KEEPS}, K = {k})", per_seed("kernel off", k, "usage"), ">", KEEPS, side=V.OURS),
           V.judge_difference(f"The kernel (2σ² = 0.1) leaves fewer codes in use than the kernel off "
                              f"(K = {k})", per_seed("kernel off", k), per_seed("2σ² = 0.1", k), ">", side=V.OURS),
           V.judge(f"The codes the kernel (2σ² = 0.1) leaves unused sit on other codes: more than "
                   f"{STACKS:.0%} of the codebook stacked (K = {k})", per_seed("2σ² = 0.1", k, "stacked"),
                   ">", STACKS, side=V.OURS)]
    for arm in ("2σ² = 0.1", "2σ² = 1"):
        out.append(V.judge_difference(f"With the kernel ({arm}), a codebook of {k} keeps less than one code "
                                      f"more in use than one of {small}", per_seed(arm, k), per_seed(arm, small),
                                      "<", 1.0, side=V.OURS))
    out.append(V.judge_difference(f"A wider kernel leaves fewer codes in use: 2σ² = 0.1 against 1 (K = {k})",
                                  per_seed("2σ² = 0.1", k), per_seed("2σ² = 1", k), ">", side=V.OURS))
    return out


# -- figures ---------------------------------------------------------------------------------------
def plot_counts(df: pd.DataFrame):
    """Codes in use against K, one panel per start, a line per arm (mean over seeds, bars: ±1 sd),
    the line ``used = K`` dotted."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(INITS), figsize=(4.2 * len(INITS), 3.4), sharey=True, squeeze=False)
    sm = summary(df)
    sizes = sorted(df["K"].unique())
    for ax, init in zip(axes[0], INITS):
        ax.plot(sizes, sizes, ":", color="0.6", label="used = K")
        for arm, marker in zip(ARMS, "osD^"):
            r = sm[(sm["init"] == init) & (sm["arm"] == arm)].sort_values("K")
            if len(r):
                ax.errorbar(r["K"], r["used"], yerr=r["used_sd"].fillna(0), marker=marker, capsize=3, label=arm)
        ax.set(xscale="log", yscale="log", xlabel="K (codes)", title=f"{init} start")
        ax.set_xticks(sizes, [str(k) for k in sizes])
        ax.minorticks_off()
    axes[0, 0].set_ylabel("codes in use")
    axes[0, -1].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_codes(seed: int = 0, num_codes: int = 256, init: str = "kmeans", arms=("kernel off", "2σ² = 0.1"),
               steps: int = 2000, lr: float = 1e-2):
    """The data of ``seed`` and the codes one fit per arm ends with (recomputed): a dot per distinct
    place, its area proportional to the number of codes stacked there."""
    import matplotlib.pyplot as plt

    x = make_data(DATA["dim"], n=DATA["n"], clusters=DATA["clusters"], spread=DATA["spread"], seed=seed)
    tol = STACK_TOL * spread(x)
    fig, axes = plt.subplots(1, len(arms), figsize=(4.0 * len(arms), 3.8), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        c = fit(x, num_codes, ARMS[arm], init, steps, lr, seed).double()
        used = assign(x.double(), c).unique().numel()
        pts, counts = group_points(c, tol)
        ax.scatter(x[:, 0], x[:, 1], s=3, color="0.75")
        ax.scatter(pts[:, 0], pts[:, 1], s=[12 * n for n in counts], facecolors="none", edgecolors="C3")
        if ARMS[arm] is not None:
            m = kde_mode_points(x, ARMS[arm])
            ax.scatter(m[:, 0], m[:, 1], marker="x", s=40, color="k")
        ax.set_title(f"{arm}: {used} of {num_codes} codes in use,\n{len(pts)} distinct places", fontsize=9)
        ax.set_aspect("equal")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", ms=3, color="0.75", label="data"),
               Line2D([], [], ls="", marker="o", ms=7, mfc="none", mec="C3", label="codes (circle area: codes stacked there)"),
               Line2D([], [], ls="", marker="x", ms=7, color="k", label="modes of the data's kernel density")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


# -- committed results -----------------------------------------------------------------------------
STUDY = Study("kernel_meanshift", keys=("init", "arm", "K"),
              floor={"used": 1.0, "usage": 1 / max(SIZES), "stacked": 1 / max(SIZES)},
              bounds={"usage": (0.0, 1.0), "stacked": (0.0, 1.0)},
              command="python -m paper_repro.theory.meanshift",
              why=("Each fit is 2,000 Adam steps, and where two codes compete for the same place a "
                   "rounding difference can decide which one stays, so another CPU's float kernels "
                   "draw other counts from the same distribution: the check is statistical, not digit "
                   "by digit."))

#: what a build recomputes and checks: one seed, the k-means start, the judged K, every arm (four
#: fits, about 10 s on two idle cores)
RECHECK = {"seeds": (0,), "inits": (JUDGED_INIT,), "sizes": (JUDGED_K,)}


def recheck(committed: pd.DataFrame, setup: dict, seeds=RECHECK["seeds"], inits=RECHECK["inits"],
            sizes=RECHECK["sizes"], arms=tuple(ARMS)) -> pd.DataFrame:
    """Recompute ``seeds`` x ``inits`` x ``arms`` x ``sizes`` with the committed ``setup`` (its
    provenance) and check each mean against the committed one by :attr:`STUDY.rule
    <paper_repro.study.Study.rule>` (``modes``, a float64 count of the data alone, is not a statistic
    of the study: NaN with the kernel off)."""
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("recheck needs at least one seed")
    live = study(seeds=seeds, sizes=tuple(sizes), arms=tuple(arms), inits=tuple(inits),
                 steps=int(setup["steps"]), lr=float(setup["lr"]))
    return STUDY.recheck(live, committed)


def load(path=None) -> tuple[pd.DataFrame, dict]:
    """(the committed study, its provenance); regenerate with ``python -m paper_repro.theory.meanshift``."""
    return STUDY.load(path)


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="NS-VQ's kernel as mean shift: study -> data/results/kernel_meanshift/")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args(argv)
    if args.seeds < 2:
        raise SystemExit("--seeds must be at least 2 (a verdict needs two)")
    seeds = tuple(range(args.seeds))
    setup = {**DATA, "sizes": list(SIZES), "arms": {a: w for a, w in ARMS.items()}, "inits": list(INITS),
             "steps": args.steps, "lr": 1e-2, "kernel_decay": 1.0, "stack_tol": STACK_TOL, "seeds": list(seeds)}
    df, out = STUDY.measure(lambda: study(seeds=seeds, steps=args.steps, progress=True), setup)
    print(summary(df).round(3).to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
