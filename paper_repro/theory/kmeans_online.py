"""Supp. 8, executable: online (winner-take-all) VQ is stochastic approximation of k-means.

On a fixed finite data set ``X`` (the empirical distribution ``P``; Supp. 8 allows this case):

- ``J(C) = mean_x min_k ||x - c_k||^2``  (Eq. A1);
- ``h_k(C) = mean_x 1{x in V_k(C)} (x - c_k)``  (Eq. A7), and ``dJ/dc_k = -2 h_k``  (Eq. A2);
- online VQ  ``c_k <- c_k + eta_t 1{k = argmin_j ||x_t - c_j||} (x_t - c_k)``  (Eq. A4-A5), with
  ``x_t`` drawn i.i.d. (with replacement) from ``X``;
- the mean-field ODE ``dC/dt = h(C) = -1/2 grad J``  (Eq. A10), along which ``J`` is a Lyapunov
  function (Eq. A11). We integrate it with explicit Euler steps ``C <- C + dt h(C)``. For
  ``dt <= 1`` every Euler step decreases ``J`` exactly (with the partition held fixed, the step moves
  ``c_k`` a fraction ``dt p_k <= 1`` of the way to its cell mean; re-partitioning can only lower ``J``);
- stationary points: ``c_k = E[x | x in V_k(C)]`` (Eq. A3) = Lloyd's fixed points.

Departures / choices: ties go to the lowest index; an empty cell gives ``h_k = 0`` (its code stays
put, as in Eq. A5); the Robbins-Monro schedule is ``eta_t = eta0 (1 + t/t0)^(-p)`` with
``1/2 < p <= 1`` (``sum eta = inf``, ``sum eta^2 < inf``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check(x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    c = np.asarray(c, dtype=float)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"need X (n, d) and C (K, d) with the same d; got {x.shape} and {c.shape}")
    if not (np.isfinite(x).all() and np.isfinite(c).all()):
        raise ValueError("X or C contains NaN/inf")
    return x, c


def make_data(n: int = 2000, n_blobs: int = 6, d: int = 2, spread: float = 4.0, seed: int = 0) -> np.ndarray:
    """A fixed data set: ``n`` points from ``n_blobs`` unit Gaussians with centres ``~ U(-spread, spread)^d``."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-spread, spread, size=(n_blobs, d))
    lab = rng.integers(0, n_blobs, size=n)
    return centres[lab] + rng.normal(size=(n, d))


def init_codes(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` distinct data points chosen at random (the common k-means initialisation)."""
    rng = np.random.default_rng([seed, 7])
    return np.array(x[rng.choice(len(x), size=k, replace=False)], dtype=float)


def assign(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Voronoi cell of each point (Eq. A4)."""
    from ..quantizers.search import nearest_code_numpy
    return nearest_code_numpy(*_check(x, c))


def distortion(x: np.ndarray, c: np.ndarray) -> float:
    """``J(C)`` of Eq. A1 on the empirical distribution of ``x``."""
    x, c = _check(x, c)
    idx = assign(x, c)
    return float(((x - c[idx]) ** 2).sum(1).mean())


def mean_field(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``h_k(C) = (1/n) sum_{x in V_k} (x - c_k)`` (Eq. A7); equals ``-1/2 dJ/dc_k`` away from ties."""
    x, c = _check(x, c)
    idx = assign(x, c)
    k = c.shape[0]
    sums = np.zeros_like(c)
    np.add.at(sums, idx, x)
    counts = np.bincount(idx, minlength=k).astype(float)
    return (sums - counts[:, None] * c) / x.shape[0]


def grad_distortion(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closed form ``dJ/dc_k = -2 h_k(C)`` (Eq. A2)."""
    return -2.0 * mean_field(x, c)


def lloyd_step(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """One Lloyd (batch k-means) step: every non-empty code moves to its cell mean (Eq. A3)."""
    x, c = _check(x, c)
    idx = assign(x, c)
    out = c.copy()
    for k in np.unique(idx):
        out[k] = x[idx == k].mean(0)
    return out


def lloyd(x: np.ndarray, c0: np.ndarray, max_iter: int = 500) -> tuple[np.ndarray, int]:
    """Lloyd's algorithm from ``c0`` until the partition stops changing; returns (C*, iterations)."""
    c = np.asarray(c0, dtype=float)
    prev = None
    for it in range(1, max_iter + 1):
        idx = assign(x, c)
        c = lloyd_step(x, c)
        if prev is not None and np.array_equal(idx, prev):
            return c, it
        prev = idx
    return c, max_iter


def match_codes(c: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Permutation of ``c``'s rows that best matches ``ref`` (Hungarian on squared distances)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((c[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    out = np.empty_like(c)
    out[cols] = c[rows]
    return out


def code_error(c: np.ndarray, ref: np.ndarray) -> float:
    """``sum_k ||c_pi(k) - ref_k||^2`` after the best matching permutation ``pi``."""
    return float(((match_codes(c, ref) - ref) ** 2).sum())


@dataclass
class ODEResult:
    times: np.ndarray
    J: np.ndarray
    grad_norm2: np.ndarray
    codes: np.ndarray           # final C


def ode_flow(x: np.ndarray, c0: np.ndarray, dt: float = 0.1, steps: int = 2000) -> ODEResult:
    """Euler integration of Eq. A10, ``C <- C + dt h(C)``, recording ``J`` and ``||grad J||^2``."""
    if not 0 < dt <= 1:
        raise ValueError(f"dt must be in (0, 1] for the monotone-J guarantee, got {dt}")
    c = np.array(c0, dtype=float)
    js, gs = [], []
    for _ in range(steps + 1):
        h = mean_field(x, c)
        js.append(distortion(x, c))
        gs.append(float((4.0 * h * h).sum()))
        c = c + dt * h
    return ODEResult(np.arange(steps + 1) * dt, np.array(js), np.array(gs), c - dt * h)


def rm_schedule(eta0: float = 0.5, t0: float = 100.0, power: float = 0.7):
    """``eta_t = eta0 (1 + t/t0)^(-power)``; Robbins-Monro needs ``1/2 < power <= 1``."""
    if not 0.5 < power <= 1.0:
        raise ValueError(f"Robbins-Monro needs 1/2 < power <= 1, got {power}")
    return lambda t: eta0 * (1.0 + t / t0) ** (-power)


def constant_schedule(eta: float):
    """Constant step size (violates ``sum eta^2 < inf``)."""
    return lambda t: eta


@dataclass
class OnlineResult:
    steps: np.ndarray           # iteration counts at which records were taken
    J: np.ndarray
    err: np.ndarray             # code_error to the reference (nan if no reference)
    etas: np.ndarray
    codes: np.ndarray           # final C


def online_vq(x: np.ndarray, c0: np.ndarray, steps: int, schedule, seed: int = 0,
              reference: np.ndarray | None = None, n_records: int = 60) -> OnlineResult:
    """Eq. A4-A5 with ``x_t`` drawn i.i.d. from the rows of ``x``; records on a log-spaced grid."""
    x, c = _check(x, c0)
    c = c.copy()
    rng = np.random.default_rng([seed, 11])
    draws = rng.integers(0, len(x), size=steps)
    rec = set(np.unique(np.geomspace(1, steps, n_records).astype(int)).tolist()) | {0, steps}
    out_s, out_j, out_e, out_eta = [], [], [], []

    def record(t):
        out_s.append(t)
        out_j.append(distortion(x, c))
        out_e.append(code_error(c, reference) if reference is not None else np.nan)
        out_eta.append(schedule(t))

    record(0)
    for t in range(steps):
        xt = x[draws[t]]
        diff = xt - c
        w = int((diff * diff).sum(1).argmin())
        c[w] += schedule(t) * diff[w]
        if t + 1 in rec:
            record(t + 1)
    return OnlineResult(np.array(out_s), np.array(out_j), np.array(out_e), np.array(out_eta), c)


def noise_floor(x: np.ndarray, c_star: np.ndarray, etas=(0.004, 0.016, 0.064), steps: int = 20000,
                seeds=(0, 1, 2)):
    """Constant step sizes started at the fixed point ``c_star``: mean ``||C_t - C*||^2`` over the
    second half of the run, per ``eta`` (averaged over seeds), and the log-log slope against ``eta``
    (SA theory: the stationary spread is ``O(eta)``, slope ~ 1).
    """
    import pandas as pd

    rows = []
    for eta in etas:
        vals = []
        for sd in seeds:
            x_, c = _check(x, c_star)
            c = c.copy()
            rng = np.random.default_rng([sd, 13])
            draws = rng.integers(0, len(x_), size=steps)
            acc, cnt = 0.0, 0
            for t in range(steps):
                diff = x_[draws[t]] - c
                w = int((diff * diff).sum(1).argmin())
                c[w] += eta * diff[w]
                if t >= steps // 2:
                    acc += float(((c - c_star) ** 2).sum())
                    cnt += 1
            vals.append(acc / cnt)
        rows.append({"eta": eta, "mean_sq_dist": float(np.mean(vals)), "std_over_seeds": float(np.std(vals)),
                     "ratio_to_eta": float(np.mean(vals)) / eta})
    df = pd.DataFrame(rows)
    slope = float(np.polyfit(np.log(df.eta), np.log(df.mean_sq_dist), 1)[0])
    return df, slope
