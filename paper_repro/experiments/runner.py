"""Run a named grid (skipping what is stored), or load it: ``run_grid``, ``load_grid``, ``run_or_load``.

``load_grid(name, profile)`` only reads committed records (``auto``: the highest-scale profile that
has any) and says where they came from; it never trains, so a book build trains nothing.

``run_grid(name, profile, device, jobs=N)``: each config is keyed by its hash. A run whose record is
in the store (and complete) is skipped; a run whose folder
``runs/<experiment>/<profile>/<hash>/`` holds a checkpoint is resumed from it; the rest start fresh.
With ``jobs > 1`` each run is a worker process (``python -m paper_repro train --config ...``) pinned
to ``threads_per_job`` CPU threads, so several small runs share one GPU; each worker publishes its
own record. A ``time_budget_s`` makes workers checkpoint and stop before it runs out (exit code
75), so a killed or time-limited sweep continues on the next call.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pandas as pd

from ..paths import REPO_ROOT, RUNS_DIR
from ..profiles import AUTO, PROFILES, get_profile, profiles_by_scale
from ..training.checkpoint import CheckpointError, atomic_write_text, load_checkpoint
from ..training.config import TrainConfig, config_hash
from ..training.trainer import CHECKPOINT_NAME, RECORD_NAME, NonFiniteLossError, TrainingInterrupted, train
from . import store
from .grids import get_grid

from ..exitcodes import INTERRUPTED as EXIT_INTERRUPTED, NONFINITE as EXIT_NONFINITE  # noqa: E402


def run_dir_for(cfg: TrainConfig, runs_root=None) -> Path:
    root = Path(runs_root) if runs_root is not None else RUNS_DIR
    return root / (cfg.experiment or "adhoc") / (cfg.profile or "custom") / config_hash(cfg)


class DataMismatch(ValueError):
    """A stored record of this config was made on other data (another data fingerprint)."""


_FINGERPRINTS: dict = {}


def _check_same_data(cfg: TrainConfig, rec: dict, where) -> None:
    """Refuse to reuse, or to overwrite, a record of this config made on other data. Records made
    before data fingerprints existed (no ``data`` entry) pass."""
    theirs = (rec.get("data") or {}).get("fingerprint")
    if theirs is None:
        return
    key = (cfg.dataset, cfg.data_root)
    if key not in _FINGERPRINTS:
        from ..training.trainer import data_fingerprint
        _FINGERPRINTS[key] = data_fingerprint(cfg).get("fingerprint")
    ours = _FINGERPRINTS[key]
    if ours != theirs:
        raise DataMismatch(f"{where} holds a run of this config on other data (fingerprint {theirs}, "
                           f"this data {ours}); move it away or use another --results-root")


class Status(str, Enum):
    """Outcome of one config in a sweep (the summary table's ``status`` column holds the value)."""
    STORED = "stored"            # a complete record was already in the store
    PUBLISHED = "published"      # a finished run folder's record was copied into the store now
    SHARED = "shared"            # another grid's record of the same config was copied in (not retrained)
    DONE = "done"                # trained in this sweep
    INTERRUPTED = "interrupted"  # checkpointed before a deadline or SIGTERM: rerun to resume
    FAILED = "failed"


COMPLETE = (Status.STORED.value, Status.PUBLISHED.value, Status.SHARED.value, Status.DONE.value)


def _stored(cfg: TrainConfig, root) -> dict | None:
    """The store's complete record of ``cfg``, or None (a query: changes nothing). An unreadable
    record counts as absent (the run is redone and its record rewritten). Raises DataMismatch when
    the stored record was made on other data."""
    p = store.record_path(cfg.experiment, cfg.profile, config_hash(cfg), root)
    if not p.exists():
        return None
    try:
        rec = store.load_record(p)
    except (ValueError, json.JSONDecodeError):
        return None
    _check_same_data(cfg, rec, p)
    return rec if store.is_reusable(rec) else None


def _publish_finished(cfg: TrainConfig, root, runs_root) -> bool:
    """Copy the record of a run folder that finished training (e.g. before a sweep was killed)
    into the store; True when it did. An unreadable record there is left for the rerun to replace."""
    rec_file = run_dir_for(cfg, runs_root) / RECORD_NAME
    if not rec_file.exists():
        return False
    try:
        rec = json.loads(rec_file.read_text())
    except (ValueError, json.JSONDecodeError):
        return False
    if rec.get("config_hash") != config_hash(cfg) or not store.is_reusable(rec):
        return False
    store.publish_run(rec_file.parent, root)
    return True


def _done(cfg: TrainConfig, root, runs_root) -> tuple[str, dict] | None:
    """(``"stored"``, record) when the store has the run, (``"published"``, record) when a finished
    run folder was published into it now, (``"shared"``, record) when another grid's record of the
    same config was copied in now (side effects), else None."""
    rec = _stored(cfg, root)
    if rec is not None:
        return Status.STORED.value, rec
    if _publish_finished(cfg, root, runs_root):
        return Status.PUBLISHED.value, store.load_record(store.record_path(cfg.experiment, cfg.profile,
                                                                           config_hash(cfg), root))
    shared = store.share_record(cfg, root)
    if shared is not None:
        rec = store.load_record(shared)
        _check_same_data(cfg, rec, shared)
        return Status.SHARED.value, rec
    return None


def _summary_row(cfg, status, seconds=None, record=None, error=None):
    final = (record or {}).get("final", {})
    return {"grid": cfg.experiment, "config_hash": config_hash(cfg), "quantizer": cfg.quantizer,
            "num_codes": cfg.num_codes, "code_dim": cfg.code_dim, "seed": cfg.seed, "status": status,
            "seconds": None if seconds is None else round(seconds, 1),
            "images_per_s": None if record is None or record.get("images_per_s") is None
            else round(record["images_per_s"], 1),
            "eval_usage": final.get("eval_usage"), "error": error}


def run_grid(name: str, profile: str, device: str = "cpu", jobs: int = 1, resume: bool = True,
             root=None, runs_root=None, time_budget_s: float | None = None,
             threads_per_job: int | None = None, progress: bool | None = None,
             verbose: bool = True, where: dict | None = None, fit: float | None = None,
             order: str = "plan") -> pd.DataFrame:
    """Run every config of grid ``name`` at ``profile`` not already stored; return a summary table
    (one row per config: status ``stored`` / ``published`` / ``shared`` / ``done`` / ``interrupted``
    / ``failed``).

    resume=False ignores stored records and checkpoints and reruns everything from scratch.
    where: only the configs whose fields equal these values (e.g. ``{"num_codes": 1024}``), so a
    long grid can be run a slice at a time, the most informative first.
    fit: with ``time_budget_s``, start only the runs expected to finish in it, with this margin
    (:func:`run_configs`). order: ``"plan"`` or ``"costly"`` (:func:`run_configs`).
    """
    _check_run_args(jobs, profile)
    return run_configs(select(get_grid(name, profile, device), where), f"grid {name!r}", profile, device,
                       jobs=jobs, resume=resume, root=root, runs_root=runs_root, time_budget_s=time_budget_s,
                       threads_per_job=threads_per_job, progress=progress, verbose=verbose, fit=fit,
                       order=order)


def load_plan(path) -> list[dict]:
    """The steps of a sweep plan file: JSON ``{"about": "...", "steps": [{"grid": NAME, "where":
    {FIELD: VALUE}}, ...]}`` (data, never executed); each step names a registered grid and an
    optional filter. Raises ValueError naming the file and the step for anything else."""
    from .grids import GRIDS
    path = Path(path)
    try:
        plan = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"sweep plan {path} is not valid JSON: {e}") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("steps"), list) or not plan["steps"]:
        raise ValueError(f"sweep plan {path}: expected an object with a non-empty list 'steps'")
    for i, step in enumerate(plan["steps"]):
        bad = not isinstance(step, dict) or set(step) - {"grid", "where"} or step.get("grid") not in GRIDS \
            or not isinstance(step.get("where", {}), dict)
        if bad:
            raise ValueError(f"sweep plan {path}, step {i}: expected {{'grid': one of {sorted(GRIDS)}, "
                             f"'where': {{field: value}} (optional)}}, got {step!r}")
    return plan["steps"]


def run_plan(steps: list[dict], profile: str, device: str = "cpu", jobs: int = 1, **kw) -> pd.DataFrame:
    """Run the grid slices of a plan (:func:`load_plan`) in order as one queue, so no worker waits
    for a slice's last run before the next slice starts; a config that two steps share (same hash,
    another grid) is trained once and shared. Keyword arguments as :func:`run_grid`."""
    _check_run_args(jobs, profile)
    cfgs = [c for _, step_cfgs in plan_configs(steps, profile, device) for c in step_cfgs]
    return run_configs(cfgs, f"plan of {len(steps)} step(s)", profile, device, jobs=jobs, **kw)


def plan_configs(steps: list[dict], profile: str, device: str = "cpu") -> list[tuple[str, list]]:
    """(label, configs) of each step of a plan, in order; the label names the grid and its filter."""
    out = []
    for st in steps:
        where = st.get("where") or {}
        label = " ".join([st["grid"], *(f"{k}={v}" for k, v in where.items())])
        out.append((label, select(get_grid(st["grid"], profile, device), where)))
    return out


# What a run's training time depends on, most specific first: the estimate of an unstored run is the
# median train_seconds of the stored records (same profile) that agree with it on the first key that
# any of them matches; () is the profile's median. The stage fields change a step's cost (a frozen
# encoder skips its backward pass; the refinement stage adds a discriminator and LPIPS), so a staged
# run is estimated from runs with the same stages, or else from the coarser levels.
COST_KEYS = (("quantizer", "num_codes", "code_dim", "width", "batch_size", "epochs", "max_steps", "train_images",
              "freeze_encoder_at_epoch", "refine_from_epoch"),
             ("num_codes", "width", "batch_size", "epochs", "max_steps", "train_images"),
             ("width", "batch_size", "epochs", "max_steps", "train_images"),
             ())


def device_kind(device: str) -> str:
    """``"cpu"`` / ``"cuda"`` of a device name (``cuda:1``) or a record's device (``cuda: NVIDIA H200``)."""
    return str(device).split(":")[0].strip()


def _stored_costs(profile: str, root, device: str = "cpu") -> list[tuple[dict, float, int | None]]:
    """(config, train_seconds, steps) of every complete record trained at ``profile`` on a device of
    ``device``'s kind (a GPU's times say nothing of the CPU's; copies shared from another grid left
    out: they would count one run twice). An unreadable record is skipped, as the sweep would redo it."""
    kind = device_kind(device)
    base = Path(root) if root is not None else store.results_root(profile)
    experiments = sorted(d.parent.name for d in base.glob(f"*/{profile}") if d.is_dir()) if base.is_dir() else []
    return [(rec["config"], float(rec["train_seconds"]),
             rec["steps"] if isinstance(rec.get("steps"), int) and rec["steps"] > 0 else None)
            for exp in experiments for rec in store.load_records(exp, profile, root=base, errors=[])
            if store.is_reusable(rec) and isinstance(rec.get("train_seconds"), (int, float))
            and "shared_from" not in rec
            and device_kind((rec.get("provenance") or {}).get("device", kind)) == kind]


def estimate_seconds(cfg: TrainConfig, costs: list[tuple], done_steps: int = 0) -> tuple[float | None, int]:
    """(median stored train_seconds of runs shaped like ``cfg``, index of the COST_KEYS level used);
    (None, -1) when nothing is stored at the profile. ``done_steps``: optimiser steps a checkpoint
    already holds; each matching run's time is then scaled to the share of its steps still to train
    (a run whose record does not say its steps counts whole: an upper bound)."""
    want = cfg.to_dict()
    for level, keys in enumerate(COST_KEYS):
        same = [t * max(0.0, 1.0 - done_steps / n) if done_steps and n else t
                for c, t, n in costs if all(_same(c.get(k), want.get(k)) for k in keys)]
        if same:
            return float(pd.Series(same).median()), level
    return None, -1


def checkpoint_steps(cfg: TrainConfig, runs_root=None) -> int:
    """Optimiser steps the run folder's checkpoint holds (0 without one, or with one that cannot be
    read: the run would then start again). Loaded with ``weights_only=True`` like any checkpoint."""
    path = run_dir_for(cfg, runs_root) / CHECKPOINT_NAME
    if not path.exists():
        return 0
    try:
        ck = load_checkpoint(path)
    except CheckpointError:
        return 0
    return int((ck.get("state") or {}).get("global_step", 0)) if ck.get("config_hash") == config_hash(cfg) else 0


TO_TRAIN = ("checkpoint", "to run")      # the plan_status states that need training


def plan_status(cfgs: list, profile: str, root=None, runs_root=None, device: str = "cpu") -> pd.DataFrame:
    """Where a queue of configs stands, without changing anything (the query behind ``sweep
    --dry-run``): one row per config with ``state`` ``stored`` / ``shareable`` (another grid holds
    its hash: no training) / ``queued twice`` (an earlier config of the queue has its hash) /
    ``checkpoint`` (a run folder to resume) / ``to run`` / ``data mismatch``, and for those that
    need training ``est_seconds`` from :func:`estimate_seconds` (for a checkpointed run the time
    still to go, from the steps its checkpoint holds) with ``est_from`` naming the COST_KEYS level;
    estimates from records trained on ``device``'s kind only."""
    costs = _stored_costs(profile, root, device)
    rows, seen = [], set()
    for c in cfgs:
        h = config_hash(c)
        try:
            rec = _stored(c, root)
        except DataMismatch:
            state, rec = "data mismatch", None
        else:
            if rec is not None:
                state = "stored"
            elif store.find_shared(c, root) is not None:
                state = "shareable"
            elif h in seen:
                state = "queued twice"
            elif any((run_dir_for(c, runs_root) / f).exists() for f in (CHECKPOINT_NAME, RECORD_NAME)):
                state = "checkpoint"
            else:
                state = "to run"
        if state in TO_TRAIN:
            seen.add(h)
        est, level = estimate_seconds(c, costs, checkpoint_steps(c, runs_root) if state == "checkpoint" else 0) \
            if state in TO_TRAIN else (None, -1)
        rows.append({"grid": c.experiment, "config_hash": h, "quantizer": c.quantizer, "num_codes": c.num_codes,
                     "code_dim": c.code_dim, "seed": c.seed, "state": state,
                     "est_seconds": None if est is None else round(est, 1),
                     "est_from": None if level < 0 else ("profile median" if not COST_KEYS[level]
                                                         else "same " + ", ".join(COST_KEYS[level]))})
    return pd.DataFrame(rows)


def _check_run_args(jobs, profile) -> None:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if profile == AUTO:
        raise ValueError(f"a sweep needs a concrete profile ({', '.join(PROFILES)}); 'auto' is for run_or_load")


def run_configs(cfgs: list, label: str, profile: str, device: str = "cpu", jobs: int = 1,
                resume: bool = True, root=None, runs_root=None, time_budget_s: float | None = None,
                threads_per_job: int | None = None, progress: bool | None = None,
                verbose: bool = True, fit: float | None = None, order: str = "plan") -> pd.DataFrame:
    """The queue behind :func:`run_grid` and :func:`run_plan`: skip what is stored, train the rest
    (``jobs`` at a time), each config hash once; a later config of the same hash (another grid's)
    shares the first one's record when it is done.

    fit (a margin >= 1, e.g. FIT_MARGIN; needs ``time_budget_s``): start a run only when it is
    expected to finish before the budget ends: its :func:`estimate_seconds` (the time still to go for
    a checkpointed run) times ``fit``. A free worker takes the first run of the queue that fits; the
    rest stay "not started" for a later sweep. A run with no estimate (nothing stored at the profile)
    is started. For a machine that will not be there for the next sweep: no run is left half-trained.

    order: ``"plan"`` trains the runs in the order given; ``"costly"`` the ones expected to take
    longest on the CPU first (:func:`estimate_seconds` from the stored CPU records at ``profile``; no
    estimate counts as longest; ties keep the given order). A lent GPU trains a ``cpu``-profile run
    in about the same time whatever its shape (launch-bound), so costliest-first there saves the
    most CPU time."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if progress is not None:
        cfgs = [c.replace(progress=progress) for c in cfgs]
    if fit is not None and not time_budget_s:
        raise ValueError("fit needs a time budget (time_budget_s / --time-budget): it starts only the "
                         "runs expected to finish within it")
    if fit is not None and (isinstance(fit, bool) or not isinstance(fit, (int, float)) or not fit >= 1):
        raise ValueError(f"fit is a margin on the estimated training time, a number >= 1; got {fit!r}")
    deadline = time.time() + time_budget_s if time_budget_s else None
    rows, todo, later, queued = [], [], [], set()
    for c in cfgs:
        try:
            st = _done(c, root, runs_root) if resume else None
        except DataMismatch as e:
            rows.append(_summary_row(c, Status.FAILED.value, error=str(e)))
            continue
        h = config_hash(c)
        if st:
            rows.append(_summary_row(c, st[0], record=st[1]))
        elif h in queued:
            later.append(c)
        else:
            queued.add(h)
            todo.append(c)
            if not resume:
                shutil.rmtree(run_dir_for(c, runs_root), ignore_errors=True)
    _check_data(todo, label, profile)
    if verbose:
        print(f"{label} at profile {profile!r} on {device}: {len(cfgs)} runs, "
              f"{len(cfgs) - len(todo) - len(later)} already stored, {len(todo)} to run"
              + (f", {len(later)} to share" if later else "") + f" (jobs={jobs})", flush=True)
    if order == "costly":            # by what the runs cost on the CPU, whatever trains them now
        cost = _expected_seconds(todo, profile, root, runs_root, "cpu")
        todo.sort(key=lambda c: -(math.inf if cost[config_hash(c)] is None else cost[config_hash(c)]))
        if verbose:
            print("  order: costliest first (stored similar runs' training time on the CPU)", flush=True)
    expected = _expected_seconds(todo, profile, root, runs_root, device) if fit is not None else {}
    if jobs == 1:
        for c in todo:
            why = _wont_fit(c, expected, deadline, fit)
            rows.append(_summary_row(c, "not started", error=why) if why else
                        _run_inline(c, root, runs_root, deadline, verbose))
    else:
        rows += _run_workers(todo, jobs, root, runs_root, deadline, threads_per_job or
                             (1 if device == "cpu" else 2), verbose, expected, fit)
    for c in later:
        st = _done(c, root, runs_root)
        rows.append(_summary_row(c, st[0], record=st[1]) if st else
                    _summary_row(c, "not started", error="its config's run in another grid did not finish"))
    summary = pd.DataFrame(rows)
    if verbose:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(summary.drop(columns=["error"]).to_string(index=False), flush=True)
        for r in rows:
            if r["error"]:
                print(f"  {r['config_hash']} ({r['quantizer']}): {r['error']}", flush=True)
    return summary


#: the orders :func:`run_configs` can train a queue in (``sweep --order``)
ORDERS = ("plan", "costly")

#: ``fit``'s default margin (``sweep --fit``): a run starts only if its estimated time times this fits in
#: the time left. Stored times were measured beside other work (two 1-thread runs at once at cpu), so
#: this covers a busier neighbour, not a different machine.
FIT_MARGIN = 1.25


def _check_data(cfgs: list, label: str, profile: str) -> None:
    """Before anything starts: every data set the runs still to train read is there (each (dataset,
    data_root) checked once, cheaply). Raises one DatasetNotFoundError naming how many runs need each
    missing data set, instead of every run failing with the same message after its start-up."""
    from ..data import DatasetNotFoundError, check_available

    splits: dict = {}
    runs: dict = {}
    for c in cfgs:
        key = (c.dataset, c.data_root)
        splits.setdefault(key, {"train"}).add(c.eval_split)
        runs[key] = runs.get(key, 0) + 1
    missing = []
    for (dataset, data_root), wanted in splits.items():
        try:
            check_available(dataset, data_root, tuple(sorted(wanted)))
        except DatasetNotFoundError as e:
            missing.append(f"{runs[dataset, data_root]} run(s) need {dataset}: {e}")
    if missing:
        raise DatasetNotFoundError(f"{label} at profile {profile!r}: nothing was started, data are missing.\n  "
                                   + "\n  ".join(missing))


def _expected_seconds(cfgs: list, profile: str, root, runs_root, device: str = "cpu") -> dict:
    """config hash -> estimated seconds still to train on ``device``'s kind (None: no estimate)."""
    costs = _stored_costs(profile, root, device)
    return {config_hash(c): estimate_seconds(c, costs, checkpoint_steps(c, runs_root))[0] for c in cfgs}


def _wont_fit(cfg, expected: dict | None, deadline: float | None, margin: float | None) -> str | None:
    """Why ``cfg`` is not started now under ``fit`` (None: start it)."""
    if not expected or deadline is None or margin is None:
        return None
    est = expected.get(config_hash(cfg))
    left = deadline - time.time()
    if est is None or est * margin <= left:
        return None
    return (f"expected {est / 60:.0f} min (x {margin:g} margin), {max(left, 0) / 60:.0f} min of the "
            f"time budget left: waits for a later sweep")


def select(cfgs: list, where: dict | None) -> list:
    """The configs whose fields equal every value of ``where``; an unknown field or a filter that
    matches nothing is an error (a typo must not silently run nothing)."""
    if not where:
        return list(cfgs)
    known = set(cfgs[0].to_dict()) if cfgs else set()
    unknown = sorted(set(where) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) in the filter: {unknown}; valid: {sorted(known)}")
    out = [c for c in cfgs if all(_same(getattr(c, k), v) for k, v in where.items())]
    if not out:
        raise ValueError(f"no config of the grid matches {where}")
    return out


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _run_inline(cfg, root, runs_root, deadline, verbose):
    run_dir = run_dir_for(cfg, runs_root)
    t0 = time.perf_counter()
    try:
        train(cfg, run_dir=run_dir, resume=True, deadline=deadline)
    except TrainingInterrupted as e:
        return _summary_row(cfg, Status.INTERRUPTED.value, time.perf_counter() - t0, error=str(e))
    except Exception as e:  # a diverging run, a corrupt checkpoint, missing data...: the others go on
        return _summary_row(cfg, Status.FAILED.value, time.perf_counter() - t0, error=f"{type(e).__name__}: {e}")
    store.publish_run(run_dir, root)
    rec = json.loads((run_dir / RECORD_NAME).read_text())
    return _summary_row(cfg, Status.DONE.value, time.perf_counter() - t0, record=rec)


def _run_workers(todo, jobs, root, runs_root, deadline, threads, verbose, expected=None, margin=None):
    """Run configs as ``python -m paper_repro train`` worker processes, ``jobs`` at a time; with
    ``expected`` (config hash -> seconds) and ``margin`` (see ``fit``) only those that fit before the
    deadline."""
    queue = list(todo)
    running: dict = {}
    rows = []
    while queue or running:
        while queue and len(running) < jobs and (deadline is None or time.time() < deadline - 5):
            fits = [c for c in queue if not _wont_fit(c, expected, deadline, margin)]
            if not fits:
                break
            queue.remove(fits[0])
            cfg = fits[0].replace(num_threads=threads)
            run_dir = run_dir_for(cfg, runs_root)
            run_dir.mkdir(parents=True, exist_ok=True)
            cfg_file = run_dir / "config.json"
            atomic_write_text(cfg_file, cfg.to_json())
            cmd = [sys.executable, "-m", "paper_repro", "train", "--config", str(cfg_file),
                   "--run-dir", str(run_dir), "--resume", "--publish"]
            if root is not None:
                cmd += ["--results-root", str(root)]
            if deadline is not None:
                cmd += ["--deadline", f"{deadline:.3f}"]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
            log = open(run_dir / "worker.log", "ab")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT))
            running[proc] = (cfg, run_dir, time.perf_counter(), log)
            if verbose:
                print(f"  started {config_hash(cfg)} ({cfg.quantizer}, seed {cfg.seed}) pid {proc.pid}",
                      flush=True)
        if not running:      # deadline passed, or nothing left fits in it, before the queue emptied
            rows += [_summary_row(c, "not started", error=_wont_fit(c, expected, deadline, margin)) for c in queue]
            break
        time.sleep(0.5)
        for proc in list(running):
            rc = proc.poll()
            if rc is None:
                if deadline is not None and time.time() > deadline + 60:
                    proc.terminate()   # worker missed its own deadline: SIGTERM -> checkpoint + exit
                continue
            cfg, run_dir, t0, log = running.pop(proc)
            log.close()
            secs = time.perf_counter() - t0
            if rc == 0:
                rec = json.loads((run_dir / RECORD_NAME).read_text())
                rows.append(_summary_row(cfg, Status.DONE.value, secs, record=rec))
            elif rc == EXIT_INTERRUPTED:
                rows.append(_summary_row(cfg, Status.INTERRUPTED.value, secs, error="checkpointed; rerun to resume"))
            else:
                tail = (run_dir / "worker.log").read_text(errors="replace").strip().splitlines()[-3:]
                rows.append(_summary_row(cfg, Status.FAILED.value, secs, error=f"exit {rc}: " + " | ".join(tail)))
            if verbose:
                print(f"  {rows[-1]['status']} {config_hash(cfg)} ({cfg.quantizer}) in {secs:.0f} s",
                      flush=True)
    return rows


# -- load (never trains) / run or load -------------------------------------------------------------
def grid_results(name: str, profile: str, root=None, errors: list | None = None
                 ) -> tuple[pd.DataFrame, list[str]]:
    """Stored results of the grid's *current* configs (stale records of other configs ignored; each
    labelled with the grid's current ``tag``), and the hashes still missing (a corrupt record counts
    as missing and is reported, see ``store.read_record``)."""
    cfgs = get_grid(name, profile)
    hashes = [config_hash(c) for c in cfgs]
    records, missing = [], []
    for c, h in zip(cfgs, hashes):
        p = store.record_path(name, get_profile(profile).name, h, root)
        rec = store.read_record(p, errors) if p.exists() else None
        if rec is not None:
            if rec["config"].get("tag") != c.tag:      # the grid's current label (tags are not hashed)
                rec = dict(rec, config=dict(rec["config"], tag=c.tag))
            records.append(rec)
        else:
            missing.append(h)
    return store.records_frame(records), missing


@dataclass(frozen=True)
class GridSource:
    """Where a page's runs came from: the grid, the profile chosen, how many of the grid's runs are
    committed, their seeds, devices, commits and dates."""

    grid: str
    profile: str
    requested: str
    runs: int
    grid_runs: int
    seeds: tuple
    devices: tuple
    commits: tuple
    dates: tuple
    folder: str

    @property
    def complete(self) -> bool:
        return self.runs == self.grid_runs

    @property
    def evidence(self) -> bool:
        """Do verdicts at this profile count as evidence (False at ``ci``: pipeline checks)?"""
        return get_profile(self.profile).evidence

    def sentence(self) -> str:
        chosen = (f"profile {self.profile} (chosen by profile=auto: the highest-scale profile with "
                  f"committed runs)" if self.requested == AUTO else f"profile {self.profile}")
        seeds = ", ".join(map(str, self.seeds))
        dates = self.dates[0] if len(set(self.dates)) == 1 else f"{min(self.dates)} to {max(self.dates)}"
        return (f"Grid {self.grid!r}: {self.runs} of its {self.grid_runs} runs at {chosen}, "
                f"seed{'s' if len(self.seeds) > 1 else ''} {seeds}, on {'; '.join(self.devices)}, "
                f"trained {dates}; committed records in {self.folder}/."
                + ("" if self.evidence else " At this profile every verdict is a pipeline check, "
                   "not evidence about the paper."))

    def __str__(self) -> str:
        return self.sentence()


def _source(name, profile, requested, df, n_grid, root) -> GridSource:
    folder = store.results_dir(name, profile, root)
    try:
        folder = folder.relative_to(REPO_ROOT)
    except ValueError:
        pass
    return GridSource(grid=name, profile=profile, requested=requested, runs=len(df), grid_runs=n_grid,
                      seeds=tuple(sorted({int(s) for s in df["seed"]})),
                      devices=tuple(sorted({str(d) for d in df["device"]})),
                      commits=tuple(sorted({str(c) for c in df["git_commit"]})),
                      dates=tuple(sorted({str(d)[:10] for d in df["date"]})), folder=str(folder))


def load_grid(name: str, profile: str = AUTO, root=None) -> tuple[pd.DataFrame, GridSource]:
    """(results table, ``GridSource``) from the committed records of grid ``name``; never trains.

    ``profile="auto"``: the highest-scale profile (``paper`` > ``gpu`` > ``cpu`` > ``ci``) with at
    least one committed run of the grid's current configs. A partial grid is loaded as it is; the
    source says how many of how many runs it holds. No records at all is an error that names the
    command to make them.
    """
    candidates = profiles_by_scale() if profile == AUTO else [get_profile(profile).name]
    for prof in candidates:
        df, missing = grid_results(name, prof, root)
        if len(df):
            return df, _source(name, prof, profile, df, len(df) + len(missing), root)
    where = store.results_dir(name, candidates[-1], root).parent
    raise FileNotFoundError(
        f"no committed runs of grid {name!r} at profile {'/'.join(candidates)} under {where}; make "
        f"them with `python -m paper_repro sweep {name} --profile {candidates[-1]}` and commit "
        f"{where.relative_to(REPO_ROOT) if where.is_relative_to(REPO_ROOT) else where}")


def run_or_load(name: str, profile: str = AUTO, device: str = "cpu", train: bool = False,
                jobs: int = 1, root=None, runs_root=None, time_budget_s: float | None = None
                ) -> tuple[pd.DataFrame, GridSource]:
    """``load_grid``, after training the runs of ``profile`` that are not stored when ``train`` is
    true (an explicit request, e.g. ``papermill -p profile gpu -p train True``; never in a book
    build). With ``time_budget_s`` unfinished runs checkpoint and stop before the budget ends, and a
    RuntimeError says to call again: the next call resumes them.
    """
    if not train:
        return load_grid(name, profile, root)
    if profile == AUTO:
        raise ValueError(f"train=True needs a concrete profile ({', '.join(PROFILES)}), not 'auto'")
    get_profile(profile)
    summary = run_grid(name, profile, device, jobs=jobs, root=root, runs_root=runs_root,
                       time_budget_s=time_budget_s, verbose=False)
    bad = summary[~summary["status"].isin(COMPLETE)]
    if len(bad):
        again = (" Time budget reached: run again to resume from the checkpoints."
                 if set(bad["status"]) == {Status.INTERRUPTED.value} else "")
        raise RuntimeError(f"grid {name!r} at {profile!r}: {len(bad)} run(s) did not finish.{again}\n"
                           + bad.to_string(index=False))
    return load_grid(name, profile, root)
