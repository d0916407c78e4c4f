"""Results store: one JSON record per run, ``<root>/<experiment>/<profile>/<config_hash>.json``.

Where records live (decision): every profile, ``ci`` included, under ``data/results/`` (committed).
Records are the results: the book loads them and never trains; regenerating them is an explicit
``python -m paper_repro sweep GRID --profile P`` followed by a commit. Whether committed records
still match the code is checked by the reproduction test (``tests/reproduction/``), which re-trains
a sample of them and compares within stated tolerances. ``$PAPER_REPRO_RESULTS`` overrides the root
(tests, scratch sweeps).

Each record is written atomically (temporary file + ``os.replace``), one file per run, named by the
config hash: merging the output of many GPU commands is copying files, nothing shared is mutated,
and a second run of the same config overwrites only its own file. A PNG of sample reconstructions
sits beside each record (``<config_hash>.png``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd

from ..paths import REPO_ROOT, RESULTS_DIR
from ..provenance import short_commit
from ..training.checkpoint import atomic_write_bytes, atomic_write_json
from ..training.config import TrainConfig, config_hash
from ..training.trainer import RECORD_NAME, RECORD_SCHEMA, SAMPLES_NAME

ENV_VAR = "PAPER_REPRO_RESULTS"
#: a run record's file name: its config hash (``training.config.config_hash``)
RECORD_FILE = re.compile(r"[0-9a-f]{12}\.json")

#: keys every record has (tests check the trainer's output against this).
RECORD_KEYS = ("schema", "status", "experiment", "profile", "config", "config_hash", "epochs", "final",
               "provenance", "steps", "train_seconds", "images_per_s", "wall_time_s", "trace")


def results_root(profile: str | None = None) -> Path:
    """``$PAPER_REPRO_RESULTS`` if set, else ``data/results`` (the same for every profile)."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else RESULTS_DIR


def _check_name(kind: str, value) -> str:
    if not isinstance(value, str) or not value or "/" in value or value.startswith("."):
        raise ValueError(f"{kind} must be a plain name (no '/'), got {value!r}")
    return value


def results_dir(experiment: str, profile: str, root=None) -> Path:
    root = Path(root) if root is not None else results_root(profile)
    return root / _check_name("experiment", experiment) / _check_name("profile", profile)


def record_path(experiment: str, profile: str, chash: str, root=None) -> Path:
    return results_dir(experiment, profile, root) / f"{chash}.json"


def samples_path(experiment: str, profile: str, chash: str, root=None) -> Path:
    return results_dir(experiment, profile, root) / f"{chash}.png"


def validate_record(rec: dict, where="record") -> dict:
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: not a JSON object")
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    if rec["schema"] != RECORD_SCHEMA:
        raise ValueError(f"{where}: schema {rec['schema']!r}, expected {RECORD_SCHEMA!r}")
    expected = config_hash(TrainConfig.from_dict(rec["config"]))
    if rec["config_hash"] != expected:
        raise ValueError(f"{where}: config_hash {rec['config_hash']} does not match its config ({expected})")
    return rec


def write_record(record: dict, root=None, samples: bytes | None = None) -> Path:
    """Store one record (atomically) under its experiment / profile / hash; returns the path."""
    validate_record(record)
    exp, prof = record.get("experiment"), record.get("profile")
    if not exp or not prof:
        raise ValueError("a record needs config.experiment and config.profile to be stored")
    path = record_path(exp, prof, record["config_hash"], root)
    if samples is not None:
        atomic_write_bytes(path.with_suffix(".png"), samples)
    atomic_write_json(path, record)
    return path


def publish_run(run_dir, root=None) -> Path:
    """Copy a finished run's ``record.json`` (+ ``samples.png``) from its run folder into the store."""
    run_dir = Path(run_dir)
    rec_file = run_dir / RECORD_NAME
    if not rec_file.exists():
        raise FileNotFoundError(f"no finished record in {run_dir} (expected {RECORD_NAME})")
    record = json.loads(rec_file.read_text())
    png = run_dir / SAMPLES_NAME
    return write_record(record, root, png.read_bytes() if png.exists() else None)


def find_shared(cfg: TrainConfig, root=None) -> tuple[Path, dict] | None:
    """(path, record) of a complete record of the same config (same hash) in another grid's folder at
    the same profile, or None (a query: changes nothing)."""
    chash = config_hash(cfg)
    base = Path(root) if root is not None else results_root(cfg.profile)
    if not base.is_dir():
        return None
    for other in sorted(p for p in base.glob(f"*/{_check_name('profile', cfg.profile)}/{chash}.json")
                        if p.parent.parent.name != cfg.experiment):
        try:
            rec = load_record(other)
        except (ValueError, json.JSONDecodeError):
            continue
        if is_reusable(rec):
            return other, rec
    return None


def share_record(cfg: TrainConfig, root=None) -> Path | None:
    """Copy a complete record of the same config (same hash) from another grid's folder at the same
    profile into ``cfg.experiment``'s, so one run serves every grid that holds its config (e.g. the
    staged grid's SimVQ arm is the codebook_size grid's SimVQ run). The copy takes this grid's name and
    ``tag`` (bookkeeping, not hashed) and says where it came from (``shared_from``). None when no
    other grid has it."""
    found = find_shared(cfg, root)
    if found is None:
        return None
    other, rec = found
    copy = dict(rec, experiment=cfg.experiment, config=dict(rec["config"], tag=cfg.tag,
                                                             experiment=cfg.experiment))
    copy["shared_from"] = {"experiment": rec.get("experiment"), "tag": rec["config"].get("tag"),
                           "shared": _now()}
    png = other.with_suffix(".png")
    return write_record(copy, root, png.read_bytes() if png.exists() else None)


def _now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_record(path) -> dict:
    path = Path(path)
    return validate_record(json.loads(path.read_text()), where=str(path))


class CorruptRecordWarning(UserWarning):
    """A stored record could not be read; it was left out of the table (and is named)."""


def read_record(path, errors: list | None = None) -> dict | None:
    """``load_record``, except that an unreadable record (truncated JSON, wrong schema, hash that does
    not match its config) is reported, not raised: appended to ``errors`` as (path, reason) when a
    list is given, else warned about (CorruptRecordWarning); returns None then."""
    try:
        rec = load_record(path)
    except (ValueError, OSError, KeyError, TypeError) as e:   # json.JSONDecodeError is a ValueError
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        if errors is not None:
            errors.append((str(path), reason))
        else:
            import warnings
            warnings.warn(f"left out corrupt record {path} ({reason}); rerun its config to replace it",
                          CorruptRecordWarning, stacklevel=3)
        return None
    rec["_path"] = str(path)
    return rec


def load_records(experiment: str, profile: str, root=None, errors: list | None = None) -> list[dict]:
    """Every readable stored record of ``experiment`` at ``profile`` (sorted by file name); corrupt
    ones are reported (see :func:`read_record`) and the rest still load."""
    d = results_dir(experiment, profile, root)
    if not d.exists():
        return []
    out = []
    for p in sorted(d.glob("*.json")):
        if not p.name.startswith("."):
            rec = read_record(p, errors)
            if rec is not None:
                out.append(rec)
    return out


def is_reusable(record: dict) -> bool:
    """May a stored record stand in for running its config again? When it is complete: the record
    is the result (rerun with ``sweep --fresh``, or by deleting it)."""
    return record.get("status") == "complete"


# -- tidy table --------------------------------------------------------------------------------------
_CONFIG_COLUMNS = ("quantizer", "num_codes", "code_dim", "seed", "dataset", "image_size", "backbone",
                   "width", "batch_size", "epochs", "max_steps", "lr", "lr_gamma", "grad_clip", "train_images", "eval_images",
                   "amp", "freeze_encoder_at_epoch", "warmup_steps", "refine_from_epoch", "tag")


def flatten_record(rec: dict) -> dict:
    """One row: config columns, ``quantizer_options.*``, final metrics, last-epoch train metrics,
    timing and a provenance summary."""
    cfg = rec["config"]
    row = {"experiment": rec.get("experiment"), "profile": rec.get("profile"),
           "config_hash": rec["config_hash"]}
    for k in _CONFIG_COLUMNS:
        row[k] = cfg.get(k)
    for k, v in sorted(cfg.get("quantizer_options", {}).items()):
        row[f"quantizer_options.{k}"] = json.dumps(v) if isinstance(v, (dict, list)) else v
    row.update(rec.get("final", {}))
    epochs = rec.get("epochs") or []
    if epochs:
        last = epochs[-1]
        for k in ("train_loss", "train_recon_loss", "train_epoch_usage", "train_epoch_perplexity"):
            if k in last:
                row[k] = last[k]
        row["epochs_done"] = sum(1 for e in epochs if e.get("complete"))
    for k in ("steps", "train_seconds", "images_per_s", "wall_time_s", "resumes"):
        row[k] = rec.get(k)
    prov = rec.get("provenance", {})
    row["git_commit"] = short_commit(prov.get("git_commit", "unknown"))
    row["device"] = prov.get("device")
    row["date"] = prov.get("date")
    row["torch"] = prov.get("versions", {}).get("torch")
    if "_path" in rec:
        row["record_path"] = rec["_path"]
    return row


def records_frame(records: list[dict]) -> pd.DataFrame:
    if not records:
        return pd.DataFrame(columns=["experiment", "profile", "config_hash", *_CONFIG_COLUMNS])
    df = pd.DataFrame([flatten_record(r) for r in records])
    return df.sort_values(["quantizer", "num_codes", "code_dim", "seed", "config_hash"],
                          kind="stable").reset_index(drop=True)


def load_results(experiment: str, profile: str, root=None) -> pd.DataFrame:
    """Tidy DataFrame, one row per stored run of ``experiment`` at ``profile``."""
    return records_frame(load_records(experiment, profile, root))


def copy_results(src_root, dst_root=None, experiment: str | None = None, profile: str | None = None,
                 skip_existing: bool = False, skip=()) -> list[Path]:
    """Merge records from another results tree (e.g. an unpacked GPU tarball, or a background sweep's
    worktree) into ``dst_root``: plain file copies, validated first; returns the files written.
    ``experiment`` / ``profile``: only those records; ``skip_existing``: never replace a stored record
    (a sweep's tree also holds every record that was committed when it started); ``skip``: source
    files not to copy (resolved paths)."""
    src_root = Path(src_root)
    if not src_root.is_dir():
        raise FileNotFoundError(f"no results tree at {src_root}")
    skip = {Path(x).resolve() for x in skip}
    out = []
    for p in sorted(src_root.rglob("*.json")):
        if not RECORD_FILE.fullmatch(p.name):      # a study's or benchmark's provenance, not a run record
            continue
        if p.resolve() in skip:
            continue
        rec = load_record(p)
        if (experiment and rec["experiment"] != experiment) or (profile and rec["profile"] != profile):
            continue
        dst = record_path(rec["experiment"], rec["profile"], rec["config_hash"],
                          dst_root if dst_root is not None else results_root(rec["profile"]))
        if skip_existing and dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        png = p.with_suffix(".png")
        if png.exists():
            shutil.copyfile(png, dst.with_suffix(".png"))
        atomic_write_json(dst, rec)
        out.append(dst)
    return out
