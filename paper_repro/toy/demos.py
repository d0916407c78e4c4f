"""Supp. 11 toy demos: 2-D non-stationary data and three codebook-update rules.

Four scenarios (Supp. 11.1-11.3; Figures 1, 6, 7):

- ``translation`` (11.1): ``X_b = X[idx] + theta``, ``Y_b = X_init[idx] + (10, 10)``,
  ``theta <- theta + r * mean(Y_b - X_b)``.
- ``expansion`` / ``shrink`` (11.2): ``X_b = X[idx] A^T``, ``Y_b = X_init[idx] M^T``,
  ``E = Y_b - X_b A^T``, ``A <- A + r * (2/B) E^T X_b`` (a plain gradient step on
  ``(1/B) ||Y_b - X_b A^T||_F^2``), ``A_0 = I``, ``||M||_2 > 1`` (expansion) or ``< 1`` (shrink).
- ``split`` (11.3): ``X_init ~ N((0.5, 0.5), I)``, ``Y = X_init + 10 sign(X_init)``,
  ``X_b = X[idx] + sign(X[idx]) * theta``, ``theta <- theta + r * mean(Y_b - X_b)``.

with ``N = 1500``, ``r = 0.1``, ``K = 16`` codes drawn ``N(0, 1)``. Each iteration: build the
drifted batch ``X_b`` from the current drift state, update the codebook on ``X_b``, then update
the drift state. Rules:

- ``ema`` (11.1 (1)): for every code with assigned batch samples, ``C_k <- (1-a) C_k + a mean``,
  ``a = 0.3``.
- ``nsvq`` (11.1 (2)): sample by sample, winner ``C_w += lr (x - C_w)``; every other code
  ``C_k += lr w_k (x - C_k)`` with ``w = softmax_k(-||C_k - C_w||^2 / tau)``; after each epoch
  ``tau <- tau/2``, ``lr <- 0.9 lr``.
- ``transvq`` (Sec. 3.4, Figure 1(c)): a frozen base codebook ``C`` (the same ``N(0,1)`` draw) and
  a learned map ``P_phi(c) = c W^T + b + V tanh(U c + u)`` (affine + one hidden layer of 32,
  initialised to the identity map up to a small V); assignment to the nearest ``P_phi(c_k)``, one
  plain SGD step per batch on the embedding loss ``mean ||sg(x) - P_phi(c_q)||^2`` (Eq. 25).
  This is *our* minimal stand-in for the paper's transformer block, chosen for 2-D toy data.

Values Supp. 11 leaves open, and our defaults (all overridable in :func:`run`):

- ``batch_size = 64`` (the surviving video shows ~50-60 points per batch and 10 epochs ~ 228
  iterations, i.e. ~66 points per batch), ``epochs = 10``, batches drawn by a fresh permutation each
  epoch, the last partial batch kept (24 iterations per epoch, 240 in all);
- NS-VQ ``lr0 = 0.3``, ``tau0 = 4.0``: ``tau0`` equals the mean squared distance between two codes
  of the initial ``N(0, I_2)`` codebook (``E||c_i - c_j||^2 = 2 d = 4``), so the first epoch's weights
  are not negligible across the codebook. This choice MATTERS: with ``tau0 <= 1`` or ``lr0 <= 0.1``
  NS-VQ leaves most codes behind in the translation demo (see :func:`sensitivity`). (The paper's
  real-data NS-VQ starts with ``2 sigma^2 = 1`` on latents of a different scale.)
- the softmax of ``w_k`` runs over *all* codes including the winner (``d_w = 0``), as the formula's
  ``sum_j`` is written; ``softmax_includes_winner=False`` renormalises over ``k != w`` instead;
- ``M = s R(phi) diag(1, u)``, ``phi ~ U(0, 2 pi)``, ``u ~ U(0.5, 1)``, so ``||M||_2 = s`` exactly;
  ``s = 3`` (expansion) and ``s = 0.15`` (shrink; the video's cloud ends near +-0.3);
- TransVQ: SGD lr 0.1, hidden 32, ``V`` initialised ``N(0, 0.01^2)``.

Results: :class:`ToyResult` with ``usage`` (fraction of codes nearest to at least one point of the
FINAL full data cloud), ``distortion`` (mean squared distance from the final cloud to its nearest
code) and snapshots for plotting.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..study import Study

SCENARIOS = ("translation", "expansion", "shrink", "split")
RULES = ("ema", "nsvq", "transvq")
#: Row order of Figures 6 and 7.
FIGURE_ROW_ORDER = ("translation", "shrink", "split", "expansion")


@dataclass(frozen=True)
class ToyConfig:
    """All knobs of one toy run (Supp. 11 values where the paper gives them)."""

    n_points: int = 1500
    num_codes: int = 16
    r: float = 0.1                   # drift rate (Supp. 11)
    batch_size: int = 64             # open in Supp. 11
    epochs: int = 10                 # open in Supp. 11
    ema_alpha: float = 0.3           # Supp. 11.1 (1)
    lr0: float = 0.3                 # NS-VQ, open
    tau0: float = 4.0                # NS-VQ, open
    lr_decay: float = 0.9            # Supp. 11.1 (2)
    tau_decay: float = 0.5           # Supp. 11.1 (2)
    softmax_includes_winner: bool = True   # open
    translation_target: tuple[float, float] = (10.0, 10.0)
    expansion_scale: float = 3.0     # ||M||_2 for expansion, open (> 1)
    shrink_scale: float = 0.15       # ||M||_2 for shrink, open (< 1)
    split_mu: tuple[float, float] = (0.5, 0.5)
    split_sigma: float = 1.0
    split_offset: float = 10.0
    transvq_lr: float = 0.1
    transvq_hidden: int = 32
    n_snapshots: int = 5

    def validate(self) -> None:
        if self.n_points < 2 or self.num_codes < 1 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"n_points, num_codes, batch_size and epochs must be positive: {self}")
        if not 0.0 < self.ema_alpha <= 1.0:
            raise ValueError(f"ema_alpha must be in (0, 1], got {self.ema_alpha}")
        if self.tau0 <= 0 or self.lr0 <= 0:
            raise ValueError(f"tau0 and lr0 must be > 0, got tau0={self.tau0}, lr0={self.lr0}")
        if not self.expansion_scale > 1.0:
            raise ValueError(f"expansion needs ||M||_2 > 1, got expansion_scale={self.expansion_scale}")
        if not 0.0 < self.shrink_scale < 1.0:
            raise ValueError(f"shrink needs 0 < ||M||_2 < 1, got shrink_scale={self.shrink_scale}")
        if self.n_snapshots < 2:
            raise ValueError("n_snapshots must be >= 2")


@dataclass
class Snapshot:
    step: int                 # iterations done when the snapshot was taken (0 = initial state)
    cloud: np.ndarray         # full drifted data cloud (N, 2) at this step
    batch: np.ndarray         # the batch used at this step (B, 2); empty at step 0
    codebook: np.ndarray      # codebook (K, 2) after this step's update
    target: np.ndarray        # Y_t (N, 2)
    base: np.ndarray          # base data X (N, 2)


@dataclass
class ToyResult:
    scenario: str
    rule: str
    seed: int
    config: ToyConfig
    usage: float
    distortion: float
    final_cloud: np.ndarray
    final_codebook: np.ndarray
    snapshots: list[Snapshot] = field(default_factory=list)
    n_steps: int = 0
    drift_state: np.ndarray | None = None   # final theta (2,) or A (2, 2)


# ----------------------------------------------------------------------------- metrics

def nearest_code(x: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest code (squared L2, ties -> lowest index) for each row of ``x``
    (the package's NumPy search, ``quantizers.search.nearest_code_numpy``)."""
    from ..quantizers.search import nearest_code_numpy
    return nearest_code_numpy(x, codebook)


def usage_and_distortion(x: np.ndarray, codebook: np.ndarray) -> tuple[float, float]:
    """(fraction of codes nearest to >= 1 row of x, mean squared distance of x to its nearest code)."""
    x = np.asarray(x, dtype=float)
    c = np.asarray(codebook, dtype=float)
    if not (np.isfinite(x).all() and np.isfinite(c).all()):
        raise ValueError("usage_and_distortion: x or codebook contains NaN/inf")
    idx = nearest_code(x, c)
    used = np.unique(idx).size / c.shape[0]
    dist = float(((x - c[idx]) ** 2).sum(1).mean())
    return float(used), dist


# ----------------------------------------------------------------------------- update rules

# Supp. 11's own update rules for the 2-D demos. They are not the training quantizers of
# paper_repro.quantizers: Supp. 11's NS-VQ pulls the non-winning codes with a softmax over their
# distances *to the winner* (below), whereas Eq. 16 weights them by their distance to the latent.

def supp11_ema_update(codebook: np.ndarray, batch: np.ndarray, alpha: float) -> np.ndarray:
    """Supp. 11.1 (1): ``C_k <- (1-alpha) C_k + alpha * mean(batch in cell k)`` for non-empty cells."""
    c = np.array(codebook, dtype=float, copy=True)
    idx = nearest_code(batch, c)
    for k in np.unique(idx):
        c[k] = (1.0 - alpha) * c[k] + alpha * batch[idx == k].mean(0)
    return c


def supp11_nsvq_weights(codebook: np.ndarray, w: int, tau: float, include_winner: bool = True) -> np.ndarray:
    """``omega_k = softmax_k(-||C_k - C_w||^2 / tau)`` (Supp. 11.1 (2)); entry ``w`` is set to 0.

    With ``include_winner`` the softmax denominator runs over all codes (``d_w = 0`` included);
    otherwise over ``k != w`` only.
    """
    d = ((codebook - codebook[w]) ** 2).sum(1)
    logits = -d / tau
    if not include_winner:
        logits = logits.copy()
        logits[w] = -np.inf
    logits = logits - logits.max()
    e = np.exp(logits)
    om = e / e.sum()
    om[w] = 0.0
    return om


def supp11_nsvq_step(codebook: np.ndarray, x: np.ndarray, lr: float, tau: float,
                     include_winner: bool = True) -> np.ndarray:
    """One step of Supp. 11.1 (2)'s NS-VQ rule for one sample ``x``; returns a new codebook.

    Winner ``C_w += lr (x - C_w)``; others ``C_k += lr omega_k (x - C_k)`` with ``omega``
    (:func:`supp11_nsvq_weights`) computed from the codebook *before* the step.
    """
    c = np.array(codebook, dtype=float, copy=True)
    x = np.asarray(x, dtype=float)
    w = int(((c - x) ** 2).sum(1).argmin())
    om = supp11_nsvq_weights(c, w, tau, include_winner)
    om[w] = 1.0
    return c + lr * om[:, None] * (x - c)


def _nsvq_batch(c: np.ndarray, batch: np.ndarray, lr: float, tau: float, include_winner: bool) -> np.ndarray:
    """:func:`supp11_nsvq_step` over the rows of one batch, in order."""
    for x in batch:
        c = supp11_nsvq_step(c, x, lr, tau, include_winner)
    return c


# ----------------------------------------------------------------------------- drift rules

def translation_drift(theta: np.ndarray, x_b: np.ndarray, y_b: np.ndarray, r: float) -> np.ndarray:
    """Supp. 11.1 / 11.3: ``theta <- theta + r * mean(Y_b - X_b)``."""
    return theta + r * (y_b - x_b).mean(0)


def matrix_drift(a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray, r: float) -> np.ndarray:
    """Supp. 11.2: ``E = Y_b - X_b A^T``, ``A <- A + r (2/B) E^T X_b``."""
    e = y_b - x_b @ a.T
    return a + r * (2.0 / x_b.shape[0]) * e.T @ x_b


def draw_matrix(rng: np.random.Generator, scale: float) -> np.ndarray:
    """``M = scale * R(phi) diag(1, u)``, ``phi ~ U(0, 2pi)``, ``u ~ U(0.5, 1)``: ``||M||_2 = scale``."""
    phi = rng.uniform(0.0, 2.0 * math.pi)
    u = rng.uniform(0.5, 1.0)
    rot = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    return scale * rot @ np.diag([1.0, u])


class _Scenario:
    """Holds base data X (= X_init), targets Y and the drift state; builds drifted batches."""

    def __init__(self, name: str, cfg: ToyConfig, rng: np.random.Generator):
        self.name = name
        self.r = cfg.r
        n = cfg.n_points
        if name == "split":
            self.x = rng.normal(np.asarray(cfg.split_mu), cfg.split_sigma, size=(n, 2))
            self.y = self.x + cfg.split_offset * np.sign(self.x)
            self.state = np.zeros(2)
        else:
            self.x = rng.normal(0.0, 1.0, size=(n, 2))
            if name == "translation":
                self.y = self.x + np.asarray(cfg.translation_target, dtype=float)
                self.state = np.zeros(2)
            else:
                scale = cfg.expansion_scale if name == "expansion" else cfg.shrink_scale
                self.m = draw_matrix(rng, scale)
                self.y = self.x @ self.m.T
                self.state = np.eye(2)

    def drifted(self, x: np.ndarray) -> np.ndarray:
        if self.name == "translation":
            return x + self.state
        if self.name == "split":
            return x + np.sign(x) * self.state
        return x @ self.state.T

    def update(self, base_b: np.ndarray, x_b: np.ndarray, y_b: np.ndarray) -> None:
        # 11.1 / 11.3 use the drifted batch X_b; 11.2 uses the base batch X[idx] in E = Y_b - X_b A^T.
        if self.name in ("translation", "split"):
            self.state = translation_drift(self.state, x_b, y_b, self.r)
        else:
            self.state = matrix_drift(self.state, base_b, y_b, self.r)


class TransVQMap:
    """Learned map ``P_phi(c) = c W^T + b + V tanh(U c + u)`` of a frozen base codebook.

    Trained by plain SGD on the embedding loss ``L = mean_i ||sg(x_i) - P_phi(c_{q_i})||^2``
    (Eq. 25) with ``q_i`` the nearest transformed code. Gradients are written out in closed form
    (numpy; checked against torch autograd in the tests).
    """

    def __init__(self, base: np.ndarray, hidden: int = 32, lr: float = 0.1, seed: int = 0):
        rng = np.random.default_rng([int(seed), 2])
        self.base = np.asarray(base, dtype=float)
        d = self.base.shape[1]
        self.params = {
            "W": np.eye(d),
            "b": np.zeros(d),
            "U": rng.normal(0.0, 1.0 / math.sqrt(d), size=(hidden, d)),
            "u": np.zeros(hidden),
            "V": rng.normal(0.0, 0.01, size=(d, hidden)),
        }
        self.lr = lr

    def codebook(self) -> np.ndarray:
        p = self.params
        h = np.tanh(self.base @ p["U"].T + p["u"])
        return self.base @ p["W"].T + p["b"] + h @ p["V"].T

    def loss_and_grads(self, batch: np.ndarray) -> tuple[float, dict]:
        p = self.params
        c0 = self.base
        h = np.tanh(c0 @ p["U"].T + p["u"])
        cb = c0 @ p["W"].T + p["b"] + h @ p["V"].T
        idx = nearest_code(batch, cb)
        res = cb[idx] - batch                                   # (B, d)
        loss = float((res ** 2).sum(1).mean())
        g = np.zeros_like(cb)
        np.add.at(g, idx, 2.0 * res / batch.shape[0])           # dL/dP(c_k)
        dz = (g @ p["V"]) * (1.0 - h ** 2)
        grads = {"W": g.T @ c0, "b": g.sum(0), "V": g.T @ h, "U": dz.T @ c0, "u": dz.sum(0)}
        return loss, grads

    def step(self, batch: np.ndarray) -> float:
        loss, grads = self.loss_and_grads(batch)
        for k, gk in grads.items():
            self.params[k] = self.params[k] - self.lr * gk
        return loss


# ----------------------------------------------------------------------------- driver

def _snapshot_steps(n_steps: int, n: int) -> list[int]:
    return sorted(set(int(round(s)) for s in np.linspace(0, n_steps, n)))


def run(scenario: str, rule: str, seed: int = 0, **overrides) -> ToyResult:
    """Run one Supp. 11 toy demo; ``overrides`` are :class:`ToyConfig` fields.

    Deterministic per ``seed`` (one ``numpy.random.Generator`` for data, codebook, M and batch
    order; a separate stream for the TransVQ map's initialisation). The codebook initialisation
    and the data are identical across rules for the same seed.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {SCENARIOS}")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {RULES}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    unknown = set(overrides) - set(ToyConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown ToyConfig fields {sorted(unknown)}; valid: {sorted(ToyConfig.__dataclass_fields__)}")
    cfg = replace(ToyConfig(), **overrides)
    cfg.validate()

    rng = np.random.default_rng(int(seed))
    sc = _Scenario(scenario, cfg, rng)
    codebook = rng.normal(0.0, 1.0, size=(cfg.num_codes, 2))
    # Batch orders are drawn from their own stream so that all rules see the same batches.
    order_rng = np.random.default_rng([int(seed), 1])
    orders = [order_rng.permutation(cfg.n_points) for _ in range(cfg.epochs)]
    bs = cfg.batch_size
    per_epoch = math.ceil(cfg.n_points / bs)
    n_steps = per_epoch * cfg.epochs
    snap_at = set(_snapshot_steps(n_steps, cfg.n_snapshots))

    tvq = TransVQMap(codebook, cfg.transvq_hidden, cfg.transvq_lr, int(seed)) if rule == "transvq" else None
    lr, tau = cfg.lr0, cfg.tau0
    snaps: list[Snapshot] = []

    def snap(step: int, batch: np.ndarray, cb: np.ndarray) -> None:
        snaps.append(Snapshot(step, sc.drifted(sc.x), batch.copy(), cb.copy(), sc.y, sc.x))

    if 0 in snap_at:
        snap(0, np.empty((0, 2)), codebook)
    step = 0
    for ep in range(cfg.epochs):
        perm = orders[ep]
        for start in range(0, cfg.n_points, bs):
            idxs = perm[start:start + bs]
            base_b = sc.x[idxs]
            x_b = sc.drifted(base_b)
            y_b = sc.y[idxs]
            if rule == "ema":
                codebook = supp11_ema_update(codebook, x_b, cfg.ema_alpha)
            elif rule == "nsvq":
                codebook = _nsvq_batch(codebook, x_b, lr, tau, cfg.softmax_includes_winner)
            else:
                tvq.step(x_b)
                codebook = tvq.codebook()
            if not np.isfinite(codebook).all():
                raise FloatingPointError(f"{rule} codebook diverged at step {step} ({scenario}, seed {seed})")
            sc.update(base_b, x_b, y_b)
            step += 1
            if step in snap_at:
                snap(step, x_b, codebook)
        tau *= cfg.tau_decay
        lr *= cfg.lr_decay

    final_cloud = sc.drifted(sc.x)
    usage, dist = usage_and_distortion(final_cloud, codebook)
    return ToyResult(scenario, rule, int(seed), cfg, usage, dist, final_cloud, codebook, snaps,
                     n_steps, np.array(sc.state, copy=True))


def seed_table(seeds, scenarios=SCENARIOS, rules=RULES, **overrides):
    """Usage and distortion of every (scenario, rule, seed): one row per run."""
    import pandas as pd

    return pd.DataFrame([
        {"scenario": s, "rule": r, "seed": sd, "usage": (res := run(s, r, sd, **overrides)).usage,
         "distortion": res.distortion}
        for s in scenarios for r in rules for sd in seeds
    ])


def summary_table(seeds=None, scenarios=SCENARIOS, rules=RULES, raw=None, **overrides):
    """Usage and distortion per (scenario, rule) over ``seeds`` (or over the rows of a
    :func:`seed_table` passed as ``raw``): a DataFrame with mean and std."""
    df = seed_table(seeds, scenarios, rules, **overrides) if raw is None else raw
    out = df.groupby(["scenario", "rule"], sort=False).agg(
        usage_mean=("usage", "mean"), usage_std=("usage", "std"),
        distortion_mean=("distortion", "mean"), distortion_std=("distortion", "std"),
        n_seeds=("seed", "count"))
    return out.reset_index()


def _by_seed(raw, scenario, rule, col="usage"):
    from ..verdict import per_seed

    return per_seed(raw[(raw.scenario == scenario) & (raw.rule == rule)], col)


def claim_verdicts(raw) -> list:
    """Supp. 11's claims on a :func:`seed_table`, each judged by the one rule over the seeds
    (``paper_repro.verdict``): on the three collapsing scenarios NS-VQ keeps more codes than EMA and
    at least 90 % of them, the TransVQ-style map sits between the two; on expansion EMA already
    keeps every code."""
    from .. import verdict as V

    out = []
    for s in ("translation", "shrink", "split"):
        ns, ema, tv = (_by_seed(raw, s, r) for r in ("nsvq", "ema", "transvq"))
        out += [V.judge_difference(f"{s}: NS-VQ usage > EMA usage", ns, ema),
                V.judge(f"{s}: NS-VQ usage >= 0.9", ns, ">=", 0.9),
                V.judge_difference(f"{s}: TransVQ-style map usage > EMA usage", tv, ema),
                V.judge_difference(f"{s}: TransVQ-style map usage < NS-VQ usage", tv, ns, "<")]
    out.append(V.judge("expansion: EMA already keeps every code (usage >= 1)", _by_seed(raw, "expansion", "ema"),
                       ">=", 1.0, side=V.OURS))
    return out


#: Default sensitivity settings over the values Supp. 11 leaves open: one factor at a time around
#: the defaults, plus the joint "paper-like" NS-VQ start (tau0 = 1 as 2 sigma^2 = 1 in Sec. 4, lr0 = 0.1).
SENSITIVITY_GRID: tuple[tuple[str, dict], ...] = (
    ("batch_size=32", {"batch_size": 32}),
    ("batch_size=128", {"batch_size": 128}),
    ("epochs=5", {"epochs": 5}),
    ("epochs=20", {"epochs": 20}),
    ("lr0=0.1", {"lr0": 0.1}),
    ("lr0=0.6", {"lr0": 0.6}),
    ("tau0=1", {"tau0": 1.0}),
    ("tau0=16", {"tau0": 16.0}),
    ("tau0=1,lr0=0.1", {"tau0": 1.0, "lr0": 0.1}),
    ("winner not in softmax", {"softmax_includes_winner": False}),
    ("expansion_scale=6", {"expansion_scale": 6.0}),
    ("shrink_scale=0.05", {"shrink_scale": 0.05}),
    ("shrink_scale=0.5", {"shrink_scale": 0.5}),
)

_NSVQ_ONLY = {"lr0", "tau0", "softmax_includes_winner", "lr_decay", "tau_decay"}
_ONLY_FOR = {"expansion_scale": {"expansion"}, "shrink_scale": {"shrink"}}


def sensitivity(seeds, scenarios=SCENARIOS, grid=None, rules=("ema", "nsvq"), per_seed=False):
    """Sensitivity of usage/distortion to the values Supp. 11 leaves open.

    ``grid``: sequence of ``(label, overrides)`` (default :data:`SENSITIVITY_GRID`); a ``default``
    row is always added. Returns a DataFrame (one row per setting x scenario, means over ``seeds``;
    with ``per_seed`` one row per setting x scenario x seed) with ``usage_gain = nsvq_usage -
    ema_usage``: the qualitative conclusion of Figures 6/7 is ``usage_gain >= 0`` everywhere and
    ``> 0`` where EMA loses codes. Settings that cannot change a scenario (``shrink_scale`` for
    translation, ...) are skipped; NS-VQ-only knobs reuse the default EMA runs.
    """
    import pandas as pd

    grid = SENSITIVITY_GRID if grid is None else tuple(grid)
    settings = (("default", {}),) + grid
    cache: dict = {}

    def runs(s, r, ov):
        key = (s, r, tuple(sorted(ov.items())))
        if key not in cache:
            cache[key] = [(x.usage, x.distortion) for x in (run(s, r, sd, **ov) for sd in seeds)]
        return cache[key]

    rows = []
    for label, ov in settings:
        for s in scenarios:
            if any(k in _ONLY_FOR and s not in _ONLY_FOR[k] for k in ov):
                continue
            vals = {r: runs(s, r, {k: v for k, v in ov.items() if r == "nsvq" or k not in _NSVQ_ONLY})
                    for r in rules}
            for i, sd in enumerate(seeds):
                row = {"setting": label, "scenario": s, "seed": sd}
                for r in rules:
                    row[f"{r}_usage"], row[f"{r}_distortion"] = vals[r][i]
                rows.append(row)
    df = pd.DataFrame(rows)
    if not per_seed:
        return sensitivity_means(df)
    if "ema" in rules and "nsvq" in rules:
        df["usage_gain"] = df["nsvq_usage"] - df["ema_usage"]
    return df


def sensitivity_means(per_seed):
    """The ``sensitivity(...)`` table (means over seeds) from its ``per_seed=True`` form, without
    running the toy again."""
    cols = [c for c in per_seed.columns if c.endswith(("_usage", "_distortion"))]
    df = per_seed.groupby(["setting", "scenario"], sort=False)[cols].mean().reset_index()
    if {"ema_usage", "nsvq_usage"} <= set(df.columns):
        df["usage_gain"] = df["nsvq_usage"] - df["ema_usage"]
    return df


def sensitivity_verdicts(per_seed) -> list:
    """For each setting of a ``sensitivity(..., per_seed=True)`` table, Figures 6/7's conclusion
    judged by the one rule over the seeds, cell by cell: NS-VQ keeps at least as many codes as EMA
    on every scenario, and at least 90 % of them."""
    from .. import verdict as V

    out = []
    for label, g in per_seed.groupby("setting", sort=False):
        gain, keep = [], []
        for s, h in g.groupby("scenario", sort=False):
            ns, ema = V.per_seed(h, "nsvq_usage"), V.per_seed(h, "ema_usage")
            gain.append(V.judge_difference(f"{s}: NS-VQ usage - EMA usage >= 0", ns, ema, ">=", 0.0))
            keep.append(V.judge(f"{s}: NS-VQ usage >= 0.9", ns, ">=", 0.9))
        out += [V.judge_all(f"[{label}] NS-VQ usage >= EMA usage on every scenario", gain),
                V.judge_all(f"[{label}] NS-VQ usage >= 0.9 on every scenario", keep)]
    return out


# -- the page's committed study ---------------------------------------------------------------------
# The toy is float64 numpy, but its BLAS kernels differ between CPUs and the nearest-code argmin and
# the online updates amplify the last bits: under another kernel a 5-seed mean usage moved from
# 0.1125 to 0.1 (one code of 16 on one seed) and a verdict sat 2.1 standard errors from its
# boundary. So the page judges a committed study over many seeds and rechecks a few seeds live.
#: seeds of the committed seed table (Supp. 11's claims) and of the sensitivity table
STUDY_SEEDS = tuple(range(30))
SENSITIVITY_SEEDS = tuple(range(10))
_CODE = 1.0 / ToyConfig().num_codes          # usage resolution: one code
_WHY = ("The toy is float64 numpy, but the BLAS kernels differ between CPUs and the nearest-code "
        "argmin amplifies the last bits (a code more or less on one seed), so another machine draws "
        "other values from the same distribution: the check is statistical, not digit by digit.")
_CMD = "python -m paper_repro.toy"
#: the seed table: one row per (scenario, rule, seed)
SEEDS_STUDY = Study("toy", keys=("scenario", "rule"), floor={"usage": _CODE, "distortion": 1e-3},
                    command=_CMD, file="seeds", why=_WHY, bounds={"usage": (0.0, 1.0), "distortion": (0.0, math.inf)})
#: the sensitivity table: one row per (setting, scenario, seed)
SENSITIVITY_STUDY = Study("toy", keys=("setting", "scenario"),
                          floor={"ema_usage": _CODE, "nsvq_usage": _CODE, "ema_distortion": 1e-3,
                                 "nsvq_distortion": 1e-3},
                          command=_CMD, file="sensitivity", why=_WHY,
                          bounds={"ema_usage": (0.0, 1.0), "nsvq_usage": (0.0, 1.0),
                                  "ema_distortion": (0.0, math.inf), "nsvq_distortion": (0.0, math.inf)})


def load(path=None):
    """(the committed seed table, its provenance); regenerate with ``python -m paper_repro.toy``."""
    return SEEDS_STUDY.load(path)


def load_sensitivity(path=None):
    """(the committed sensitivity table, its provenance)."""
    return SENSITIVITY_STUDY.load(path)


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Supp. 11 toy study -> data/results/toy/")
    ap.add_argument("--seeds", type=int, default=len(STUDY_SEEDS), help="seed table: seeds 0..N-1")
    ap.add_argument("--sensitivity-seeds", type=int, default=len(SENSITIVITY_SEEDS),
                    help="sensitivity table: seeds 0..N-1")
    args = ap.parse_args(argv)
    if min(args.seeds, args.sensitivity_seeds) < 2:
        ap.error("--seeds and --sensitivity-seeds must be >= 2 (a verdict needs two seeds)")
    setup = {"config": asdict(ToyConfig()), "scenarios": list(SCENARIOS),
             "rules": list(RULES), "seeds": list(range(args.seeds)),
             "sensitivity_grid": [[lbl, ov] for lbl, ov in SENSITIVITY_GRID],
             "sensitivity_seeds": list(range(args.sensitivity_seeds))}
    raw, out = SEEDS_STUDY.measure(lambda: seed_table(range(args.seeds)), setup)
    print(summary_table(raw=raw).round(3).to_string(index=False))
    _, out2 = SENSITIVITY_STUDY.measure(lambda: sensitivity(range(args.sensitivity_seeds), per_seed=True), setup)
    print(f"wrote {out} and {out2}")


if __name__ == "__main__":
    main()
