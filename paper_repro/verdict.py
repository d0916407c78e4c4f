"""One verdict rule for every claim in the book: per-seed values in, a verdict out.

A claim is "the mean of a quantity over seeds is above (or below) a threshold": a usage against a
bound, a per-seed difference between two methods against 0, a slope against 0. :func:`judge` applies
:data:`RULE` to the per-seed values; :func:`judge_difference` and :func:`judge_all` build the common
shapes (A beats B; every cell of a table) on top of it, so nothing else decides a verdict.

Verdicts: ``supported``, ``contradicted``, ``inconclusive``, ``not judged`` (one seed, or no run yet) and
``pipeline check`` (runs at a profile that is not evidence, e.g. ``ci``: the numbers are shown, the
rule is not applied). An exact computation (a maths identity, no seeds) is judged by the comparison
itself and says ``exact``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
NOT_JUDGED, PIPELINE = "not judged", "pipeline check"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_JUDGED, PIPELINE)
MARKS = {SUPPORTED: "\u2713", CONTRADICTED: "\u2717", INCONCLUSIVE: "?", NOT_JUDGED: "\u00b7",
         PIPELINE: "\u00b7"}
#: how many standard errors the mean must clear
N_SE = 2.0

RULE = ("A claim says that the mean over seeds of a quantity lies above (or below) a threshold. "
        "With n >= 2 seeds, mean m, standard deviation s (ddof 1) and standard error s/sqrt(n): the "
        "claim is supported when m lies beyond the threshold in the claimed direction by more than "
        "2 standard errors, contradicted when it lies beyond it the other way by more than 2 standard "
        "errors, and inconclusive otherwise; when every seed gives the same value (s = 0) the "
        "comparison of m with the threshold decides. One seed: not judged. A claim about several "
        "cells (every K and D, every batch size) is supported when every cell is, contradicted when "
        "any cell is, and otherwise takes the weakest verdict of its judged cells; while some of its "
        "cells have not been run or have one seed only, it is at best inconclusive, and while none is "
        "judged, it is listed as not judged. "
        "Runs at the ci profile "
        "are pipeline checks: their numbers are shown and no verdict is given.")

_OPS = {">": 1, ">=": 1, "<": -1, "<=": -1}

#: ``Verdict.side`` of a claim that is the book's own (a hypothesis, a control or a check of the set-up),
#: not a statement of the paper: the verdict table's "paper" column shows it instead of the page's source
OURS = "none: ours (a check or hypothesis of this book)"


@dataclass(frozen=True)
class Verdict:
    """A judged claim: the verdict, the per-seed statistics behind it and where they came from."""

    claim: str
    verdict: str
    n: int
    mean: float
    sd: float | None
    op: str
    threshold: float
    profile: str | None = None
    exact: bool = False
    parts: tuple = field(default=(), repr=False)
    #: whose claim it is, where the caller knows better than its page's default (e.g. "none: our
    #: hypothesis" for an audit's prediction); empty: the page's paper side applies
    side: str = ""
    #: for a claim about several cells (:func:`judge_all`, :func:`not_run`): how many cells it names;
    #: ``len(parts)`` of them have runs
    cells: int | None = None

    @property
    def mark(self) -> str:
        return MARKS[self.verdict]

    def stats(self, digits: int = 3) -> str:
        """``mean ± sd (n seeds) op threshold``, or the single value of an exact computation."""
        if self.n == 0 and not self.parts:
            return "no runs yet"
        if self.parts:
            return count(len(self.parts), "cell")
        if self.exact:
            return f"{_fmt(self.mean, digits)} {self.op} {_fmt(self.threshold, digits)} (exact)"
        sd = "" if self.sd is None or self.n < 2 else f" \u00b1 {_fmt(self.sd, digits)}"
        return (f"{_fmt(self.mean, digits)}{sd} over {count(self.n, 'seed')}, "
                f"claimed {self.op} {_fmt(self.threshold, digits)}")

    def line(self, digits: int = 3) -> str:
        """``claim: verdict [statistics]`` (the statistics at ``digits`` significant digits)."""
        where = f"; profile {self.profile}" if self.profile else ""
        return f"{self.mark} {self.claim}: {self.verdict} [{self.stats(digits)}{where}]"

    def short(self) -> str:
        """``claim: verdict (n seeds)`` without the numbers, for outputs compared across machines
        where the numbers are recomputed (their digits move with the float kernels)."""
        n = "exact" if self.exact else (count(len(self.parts), "cell") if self.parts else
                                        count(self.n, "seed"))
        return f"{self.mark} {self.claim}: {self.verdict} ({n})"

    def __str__(self) -> str:
        return self.line()


def count(n: int, noun: str) -> str:
    """``1 cell``, ``3 cells``: a count with its noun in the right number."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fmt(v: float, digits: int) -> str:
    if v is None or not np.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    mag = int(math.floor(math.log10(abs(v))))
    if -3 <= mag < 5:
        return f"{v:.{max(digits - 1 - mag, 0)}f}"
    return f"{v:.{digits - 1}e}"


def per_seed(rows: pd.DataFrame, column: str, seed_column: str = "seed") -> pd.Series:
    """The values of ``column`` indexed by seed: the per-seed input of :func:`judge` and
    :func:`judge_difference` (which pairs two such series on their common seeds)."""
    return pd.Series(rows[column].to_numpy(float), index=rows[seed_column].to_numpy())


def _values(values) -> np.ndarray:
    x = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values,
                   dtype=float).ravel()
    if x.size == 0:
        raise ValueError("a verdict needs at least one value")
    if not np.isfinite(x).all():
        raise ValueError(f"a verdict needs finite values, got {x.tolist()}")
    return x


def _evidence(profile: str | None) -> bool:
    if profile is None:
        return True
    from .profiles import PROFILES
    return PROFILES[profile].evidence if profile in PROFILES else True


def judge(claim: str, values: Iterable[float], op: str = ">", threshold: float = 0.0,
          profile: str | None = None, exact: bool = False, side: str = "") -> Verdict:
    """Apply :data:`RULE` to per-seed ``values`` of a quantity claimed to be ``op threshold``.

    profile: the profile the values come from; at one that is not evidence (``ci``) the verdict is
    ``pipeline check``. exact: the value is an exact computation (no seed noise; one value): the
    comparison decides. side: whose claim it is, where not the page's source (``Verdict.side``, e.g.
    :data:`OURS`).
    """
    if op not in _OPS:
        raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
    x = _values(values)
    n, m = x.size, float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else None
    holds = {">": m > threshold, ">=": m >= threshold, "<": m < threshold, "<=": m <= threshold}[op]
    if exact:
        if n != 1:
            raise ValueError("an exact computation gives one value")
        v = SUPPORTED if holds else CONTRADICTED
    elif not _evidence(profile):
        v = PIPELINE
    elif n == 1:
        v = NOT_JUDGED
    elif sd == 0:
        v = SUPPORTED if holds else CONTRADICTED
    else:
        d = _OPS[op] * (m - threshold)
        se = sd / math.sqrt(n)
        v = SUPPORTED if d > N_SE * se else CONTRADICTED if d < -N_SE * se else INCONCLUSIVE
    return Verdict(claim, v, n, m, sd, op, float(threshold), profile, exact, side=side)


def judge_difference(claim: str, a, b, op: str = ">", threshold: float = 0.0,
                     profile: str | None = None, side: str = "") -> Verdict:
    """Claim ``mean(a - b) op threshold``. ``a`` and ``b`` are per-seed values: two
    ``pandas.Series`` indexed by seed are paired on their common seeds (each seed's difference is
    one value); plain sequences must have the same length and are paired in order."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        common = a.index.intersection(b.index)
        if len(common) == 0:
            raise ValueError(f"{claim}: no seed in common ({list(a.index)} vs {list(b.index)})")
        diff = a.loc[common].to_numpy(float) - b.loc[common].to_numpy(float)
    else:
        a, b = _values(a), _values(b)
        if a.size != b.size:
            raise ValueError(f"{claim}: {a.size} values against {b.size}; pair them by seed")
        diff = a - b
    return judge(claim, diff, op, threshold, profile, side=side)


_WEAKNESS = (PIPELINE, NOT_JUDGED, INCONCLUSIVE, SUPPORTED)
#: the verdicts that judge a cell (the others: not judged yet, or a pipeline check)
JUDGED = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)


def judge_all(claim: str, parts: Sequence[Verdict], cells: int | None = None, side: str = "") -> Verdict:
    """A claim about several cells: supported when every part is, contradicted when any part is,
    else the weakest verdict among the parts (pipeline check < not judged < inconclusive).
    ``cells``: how many cells the claim names. While some cells are not judged (no runs yet: fewer
    parts than ``cells``; or one seed only) and some are, a claim no cell contradicts is inconclusive,
    and its text says how many cells were run, or judged."""
    parts = tuple(parts)
    if not parts:
        raise ValueError(f"{claim}: no cells to judge")
    vs = [p.verdict for p in parts]
    n_cells = len(parts) if cells is None else cells
    judged = sum(v in JUDGED for v in vs)
    if CONTRADICTED in vs:
        v = CONTRADICTED
    else:
        v = next(w for w in _WEAKNESS if w in vs)
    tag = progress(parts, n_cells)
    if tag:
        claim = f"{claim} [{tag}]"
    if judged and judged < n_cells and v in (SUPPORTED, NOT_JUDGED):
        v = INCONCLUSIVE
    profiles = {p.profile for p in parts}
    return Verdict(claim, v, min(p.n for p in parts), float("nan"), None, "all", float("nan"),
                   profiles.pop() if len(profiles) == 1 else None, all(p.exact for p in parts), parts, side,
                   n_cells)


def progress(parts: Sequence[Verdict], cells: int) -> str:
    """How far a claim about ``cells`` cells is, where some cell is not judged yet: ``"5 of its 6
    cells run"`` (no runs in one), ``"5 of its 6 cells judged"`` (one has one seed only), or both,
    ``"5 of its 6 cells run, 4 judged"``; empty when every cell is judged."""
    run, waiting = len(parts), sum(p.verdict == NOT_JUDGED for p in parts)
    tags = []
    if run < cells:
        tags.append(f"{run} of its {count(cells, 'cell')} run")
    if waiting:
        tags.append(f"{run - waiting} judged" if tags else f"{run - waiting} of its {count(cells, 'cell')} judged")
    return ", ".join(tags)


def not_run(claim: str, cells: int, side: str = "", profile: str | None = None) -> Verdict:
    """A claim about ``cells`` cells none of which has runs yet: listed as not judged, so that a page
    (and the verdict table) shows what it is waiting for instead of leaving the claim out."""
    return Verdict(f"{claim} [{progress((), cells)}]", NOT_JUDGED, 0, float("nan"), None, "all",
                   float("nan"), profile, False, (), side, cells)


def verdict_table(verdicts: Sequence[Verdict], digits: int = 3) -> pd.DataFrame:
    """One row per claim: mark, claim, verdict, the statistics behind it, profile."""
    return pd.DataFrame([{"": v.mark, "claim": v.claim, "verdict": v.verdict,
                          "evidence": v.stats(digits), "profile": v.profile or ""}
                         for v in verdicts])


def explain(v: Verdict, digits: int = 3) -> str:
    """The verdict line and, for a claim about several cells, one indented line per cell."""
    return "\n".join([v.line(digits)] + [f"    {p.line(digits)}" for p in v.parts])
