"""Experiments: named grids of training configs, a results store (one JSON record per run), and
functions that run a grid or load its stored results as a tidy DataFrame.

    from paper_repro.experiments import load_grid
    df, source = load_grid("first_run", profile="auto")   # committed records; never trains
"""
from .grids import GRIDS, get_grid, register_grid
from .runner import GridSource, grid_results, load_grid, run_dir_for, run_grid, run_or_load
from .store import (load_records, load_results, publish_run, record_path, results_dir, results_root,
                    write_record)

__all__ = ["GRIDS", "get_grid", "register_grid", "run_grid", "run_or_load", "load_grid", "GridSource", "grid_results",
           "run_dir_for", "load_results", "load_records", "write_record", "publish_run",
           "record_path", "results_dir", "results_root"]
