"""Repository paths. Everything that reads or writes project files goes through here."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
PAPER_DATA_DIR = DATA_DIR / "paper"
RESULTS_DIR = DATA_DIR / "results"
# Checkpoints and scratch output of training runs; never committed. Override with PAPER_REPRO_RUNS.
RUNS_DIR = Path(os.environ.get("PAPER_REPRO_RUNS", REPO_ROOT / "runs"))
