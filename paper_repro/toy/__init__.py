"""Supp. 11 two-dimensional toy demos (Figures 1, 6, 7): EMA vs NS-VQ vs a TransVQ-style map.

``run(scenario, rule, seed=0, **overrides)`` -> :class:`ToyResult`; see :mod:`paper_repro.toy.demos`
for the equations and the values Supp. 11 leaves open.
"""
from .demos import (
    FIGURE_ROW_ORDER, RULES, SCENARIOS, SEEDS_STUDY, SENSITIVITY_GRID, SENSITIVITY_SEEDS, SENSITIVITY_STUDY,
    STUDY_SEEDS, Snapshot, ToyConfig, ToyResult, claim_verdicts, load, load_sensitivity, supp11_ema_update, matrix_drift, nearest_code, supp11_nsvq_step, supp11_nsvq_weights, run,
    seed_table, sensitivity, sensitivity_means, sensitivity_verdicts, summary_table, translation_drift, usage_and_distortion,
)

__all__ = [
    "FIGURE_ROW_ORDER", "RULES", "SCENARIOS", "SEEDS_STUDY", "SENSITIVITY_GRID", "SENSITIVITY_SEEDS",
    "SENSITIVITY_STUDY", "STUDY_SEEDS", "Snapshot", "ToyConfig", "ToyResult", "load", "load_sensitivity",
    "supp11_ema_update", "matrix_drift", "nearest_code", "supp11_nsvq_step", "supp11_nsvq_weights", "run",
    "sensitivity", "sensitivity_means", "summary_table", "seed_table", "claim_verdicts", "sensitivity_verdicts", "translation_drift", "usage_and_distortion",
]
