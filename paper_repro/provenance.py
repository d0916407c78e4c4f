"""Provenance stored beside every result: git commit, config, seed, device, versions, date."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import subprocess
import sys
from importlib import metadata

from .paths import REPO_ROOT

_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "scikit-image", "torchmetrics", "lpips")


def git_commit() -> str:
    """The repository's HEAD commit, suffixed ``+dirty`` when tracked files differ; ``unknown``
    outside a git checkout. On a machine that gets a copy of the tree (the lent GPU machine), the
    sender names the commit the copy was made from in ``$PAPER_REPRO_COMMIT`` (a full sha; it wins,
    marked ``+copy``): the copy's own ``.git``, where one travels, can be stale (seen 2026-12-04: it
    said ``020a22a+dirty`` for a tree at ``a8f38f1``). Result records
    under ``data/results/`` are outputs, not code: a sweep that has rewritten some of them is still
    running clean code."""
    sent = os.environ.get("PAPER_REPRO_COMMIT", "").strip()
    if re.fullmatch(r"[0-9a-f]{40}", sent):
        return f"{sent}+copy"
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)data/results"],
                               cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def device_description(device: str | None = None) -> str:
    """Human-readable device, e.g. ``cuda: NVIDIA H100 80GB HBM3`` or ``cpu: AMD EPYC (2 threads)``."""
    import torch

    dev = str(device or "cpu")
    if dev.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(dev).index or 0
        return f"cuda: {torch.cuda.get_device_name(idx)}"
    return f"cpu: {cpu_model()} ({torch.get_num_threads()} threads)"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the machine architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def provenance(device: str | None = None, **extra) -> dict:
    """A provenance record; ``extra`` (config, seed, ...) is merged in."""
    rec = {
        "git_commit": git_commit(),
        "versions": library_versions(),
        "device": device_description(device),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
    }
    rec.update(extra)
    return rec


def short_commit(commit) -> str:
    """A commit for display: the sha's first 12 hex digits, keeping a ``+dirty`` / ``+copy`` suffix
    (a result made from a modified or copied tree must not read as a clean commit)."""
    sha, plus, suffix = str(commit).partition("+")
    return sha[:12] + (plus + suffix if plus else "")


def format_provenance(rec: dict) -> str:
    """One or two lines to print under a table."""
    v = rec.get("versions", {})
    vs = ", ".join(f"{k} {v[k]}" for k in ("torch", "numpy") if k in v)
    return (f"Provenance: commit {short_commit(rec.get('git_commit', '?'))}, {rec.get('device', '?')}, "
            f"{vs}, {rec.get('date', '?')}")
