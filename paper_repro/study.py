"""Committed studies: a page's measurement over many seeds, computed once and stored with provenance,
judged from the stored table, and rechecked on every build by a declared statistical rule.

Why: several theory and toy pages measure something cheap but chaotic in the float kernels (a few
optimiser steps, Lloyd's k-means, argmin ties), so another CPU or thread count draws other values
from the same distribution. A verdict computed live from a handful of seeds then flips on another
machine whenever it sits near the rule's boundary (seen in CI). A :class:`Study` keeps the verdicts
portable: ``python -m <module>`` measures many seeds and writes ``data/results/<name>/<file>.csv``
plus ``<file>.provenance.json``; the page reads them (``load``), judges the stored seeds, and
recomputes a few seeds to check that this machine still measures the same distribution
(``recheck``): each recomputed mean must lie within ``k * s * sqrt(1/n + 1/N) + r`` of the stored
one (``s``: the stored standard deviation over its ``N`` seeds, ``n``: seeds recomputed, ``r``: the
statistic's resolution).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import pandas as pd

#: default number of standard deviations (of a difference of means) a recomputed mean may be off
RECHECK_K = 5.0


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:g}, {'inf' if math.isinf(hi) else f'{hi:g}'}]".replace("inf]", "inf)")


@dataclass(frozen=True)
class Study:
    """A committed study: where it lives, how its rows are keyed, what its statistics are."""

    #: folder under ``data/results/`` (``paper_repro.paths.RESULTS_DIR``)
    name: str
    #: columns that name a cell (one cell: one mean per statistic over the seeds)
    keys: tuple[str, ...]
    #: statistic -> its resolution ``r`` (a code among K, a fraction of latents, ...)
    floor: Mapping[str, float]
    #: the command that regenerates it (said in errors and on pages)
    command: str
    file: str = "study"
    seed_column: str = "seed"
    k: float = RECHECK_K
    #: why a recomputation is not compared digit by digit (a sentence for the page)
    why: str = field(default="", compare=False)
    #: statistic -> (lowest, highest) value it can take (a cosine: (-1, 1)); a check whose tolerance
    #: spans the whole range cannot fail, and the report says how many could
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict, compare=False)
    #: statistics measured before the keys act (the same value in every cell of a seed, e.g. a kernel
    #: at initialisation under two step sizes): rechecked once, in the first cell, not once per cell
    once: tuple[str, ...] = ()

    @property
    def statistics(self) -> tuple[str, ...]:
        return tuple(self.floor)

    # -- storage ----------------------------------------------------------------------------------
    def path(self) -> Path:
        from .paths import RESULTS_DIR
        return RESULTS_DIR / self.name / f"{self.file}.csv"

    def save(self, df: pd.DataFrame, setup: dict, seconds: float | None = None, device: str = "cpu",
             path: str | Path | None = None) -> Path:
        """Write ``df`` (one row per cell and seed) and its provenance (commit, libraries, device,
        date, ``setup``, ``seconds``). Refuses a table without the study's columns or with a
        non-finite statistic, so nothing broken gets committed."""
        import torch

        from .provenance import provenance

        self._check_columns(df, "the table to save")
        bad = [c for c in self.statistics if not df[c].map(math.isfinite).all()]
        if bad:
            raise FloatingPointError(f"{self.name}: non-finite values in {bad}; nothing written")
        if df[self.seed_column].nunique() < 2:
            raise ValueError(f"{self.name}: a study needs at least 2 seeds (a verdict needs two)")
        prov = provenance(device, torch_threads=torch.get_num_threads(), setup=setup)
        if seconds is not None:
            prov["seconds"] = round(float(seconds), 1)
        out = Path(path) if path is not None else self.path()
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False, float_format="%.9g")
        out.with_suffix(".provenance.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")
        return out

    def measure(self, run, setup: dict, device: str = "cpu") -> tuple[pd.DataFrame, Path]:
        """Run ``run()`` (the measurement: returns the study's table), save it with ``setup`` and the
        seconds it took (:meth:`save`); (the table, the path written)."""
        import time

        t0 = time.time()
        df = run()
        return df, self.save(df, setup, seconds=time.time() - t0, device=device)

    def load(self, path: str | Path | None = None) -> tuple[pd.DataFrame, dict]:
        """(the committed table, its provenance)."""
        p = Path(path) if path is not None else self.path()
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: run `{self.command}` and commit it")
        df = pd.read_csv(p)
        self._check_columns(df, str(p))
        prov = p.with_suffix(".provenance.json")
        return df, (json.loads(prov.read_text()) if prov.exists() else {})

    def _check_columns(self, df: pd.DataFrame, what: str) -> None:
        missing = [c for c in (*self.keys, self.seed_column, *self.statistics) if c not in df.columns]
        if missing:
            raise KeyError(f"{what} lacks the columns {missing} of study {self.name!r}: regenerate it "
                           f"with `{self.command}`")

    # -- the recheck ------------------------------------------------------------------------------
    @property
    def rule(self) -> str:
        """The recheck rule in words, with this study's resolutions."""
        res = ", ".join(f"{s} {r:g}" for s, r in self.floor.items())
        return ("Each mean over seeds that this machine recomputes (per "
                + ", ".join(self.keys) + " and statistic) must lie within "
                f"{self.k:g} s sqrt(1/n + 1/N) + r of the committed study's mean, where s is the committed "
                "study's standard deviation over its N seeds, n the number of seeds recomputed and r the "
                f"statistic's resolution ({res}). "
                + (f"A check whose tolerance covers every value its statistic can take ({rng}) cannot fail, and "
                   "the report counts the checks that could. " if (rng := ", ".join(
                       f"{st} {_interval(lo, hi)}" for st, (lo, hi) in self.bounds.items())) else "")
                + self.why).strip()

    def recheck(self, live: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
        """One row per (cell, statistic) that ``live`` (a recomputation, same columns) measured:
        both means, the tolerance of :attr:`rule`, whether the recomputed mean is within it (``ok``) and
        whether any value the statistic can take (:attr:`bounds`) would have been outside (``can_fail``).
        Raises ``KeyError`` for a cell the committed study lacks (it must be regenerated)."""
        self._check_columns(live, "the recomputation")
        keys = list(self.keys)
        def cells(df):   # cell -> rows, a cell always a tuple (pandas gives a scalar for one key)
            return {(c if isinstance(c, tuple) else (c,)): g for c, g in df.groupby(keys, sort=False)}

        committed = cells(ref)
        for stat in self.once:   # a statistic checked once must not vary between the cells of a seed
            for table, what in ((ref, "the committed study"), (live, "the recomputation")):
                if (table.groupby(self.seed_column)[stat].nunique() > 1).any():
                    raise ValueError(f"{stat!r} is declared the same in every cell of a seed, but {what} "
                                     f"of {self.name!r} has different values")
        rows = []
        for i, (cell, lv) in enumerate(cells(live).items()):
            if cell not in committed:
                raise KeyError(f"the committed study {self.name!r} has no cell {cell}: regenerate it "
                               f"with `{self.command}`")
            rv = committed[cell]
            n, big_n = lv[self.seed_column].nunique(), rv[self.seed_column].nunique()
            for stat, floor in self.floor.items():
                if i and stat in self.once:
                    continue
                s = float(rv[stat].std(ddof=1)) if big_n > 1 else 0.0
                tol = self.k * s * math.sqrt(1 / n + 1 / big_n) + floor
                m_l, m_r = float(lv[stat].mean()), float(rv[stat].mean())
                lo, hi = self.bounds.get(stat, (-math.inf, math.inf))
                rows.append(dict(zip(keys, cell), statistic=stat, committed=m_r, recomputed=m_l,
                                 tolerance=tol, ok=bool(abs(m_l - m_r) <= tol),
                                 can_fail=bool(m_r - tol > lo or m_r + tol < hi)))
        return pd.DataFrame(rows)

    def report(self, check: pd.DataFrame) -> str:
        """One CPU-independent line (plus one per failing cell) for a checked notebook output."""
        bad = check[~check["ok"]]
        head = (f"recomputed on this machine: {int(check['ok'].sum())} of {len(check)} means within "
                "tolerance of the committed study" + (" \u2713" if bad.empty else " \u2717"))
        if "can_fail" in check and not check["can_fail"].all():
            head += (f" ({int(check['can_fail'].sum())} of the {len(check)} checks could fail; the others' "
                     "tolerance spans every value the statistic can take)")
        lines = [head]
        for _, b in bad.iterrows():
            cell = " / ".join(str(b[k]) for k in self.keys)
            lines.append(f"  outside: {cell} / {b.statistic}: committed {b.committed:.4g}, "
                         f"recomputed {b.recomputed:.4g}, tolerance {b.tolerance:.3g}")
        return "\n".join(lines)
