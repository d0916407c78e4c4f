"""Atomic files and checkpoints that load with ``torch.load(..., weights_only=True)``.

Every write goes to a temporary file in the destination folder, is flushed and fsync'ed, and then
``os.replace``'d over the target, so a killed process leaves either the old file or the new one,
never a torn one. Checkpoints hold only tensors and primitive containers (dict / list / int / float /
str / None): random-number-generator states are converted to tensors and lists here.
"""
from __future__ import annotations

import io
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj, indent: int | None = 1) -> None:
    """Write JSON atomically; NaN / Inf are refused (they are not JSON)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False) + "\n")


def atomic_torch_save(obj, path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded (empty, truncated, corrupt or not a checkpoint)."""


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``: tensors and primitive containers only); an
    unreadable file raises CheckpointError naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty; delete it, or rerun with --restart")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, refused global under weights_only, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} cannot be loaded ({type(e).__name__}: {first[:200]}); "
                              f"delete it, or rerun with --restart") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a {type(ck).__name__}, not a dict); delete it, "
                              f"or rerun with --restart")
    return ck


# -- random-number-generator state --------------------------------------------------------------
def rng_state() -> dict:
    """Python, NumPy, torch CPU and CUDA generator states as tensors / lists (weights_only-safe)."""
    py = random.getstate()
    np_state = np.random.get_state()
    out = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"key": np_state[0], "state": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return out


def set_rng_state(state: dict) -> None:
    v, s, g = state["python"]
    random.setstate((v, tuple(s), g))
    n = state["numpy"]
    np.random.set_state((n["key"], n["state"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])
