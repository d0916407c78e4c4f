"""scripts/gpu_sweep.sh, the round trip a lent GPU machine runs, rehearsed on the CPU (SWEEP_DEVICE=cpu).

A lease is short and rare: a script that breaks there wastes it (the first one lost minutes to bugs
that only a GPU showed), so its CPU-reachable paths are checked here: a plan file as NAME, the
device-side store seeded with every grid's committed records, and a clean end when nothing is new."""
import json
import os
import subprocess
import sys
import tarfile

import pytest

from paper_repro.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gpu_sweep.sh"


def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.slow
def test_plan_rehearsal_skips_stored_runs_and_returns_only_new_records(tmp_path):
    """Every run of a ci plan is committed: the sweep trains none, names each DONE, and returns no
    tarball; a record the store holds beyond the committed ones comes back, alone."""
    plan = tmp_path / "mini_plan.json"
    plan.write_text(json.dumps({"steps": [{"grid": "first_run"},
                                          {"grid": "codebook_size", "where": {"num_codes": 64, "code_dim": 3}}]}))
    store, out = tmp_path / "store", tmp_path / "out"
    extra = store / "first_run" / "ci" / "0123456789ab.json"     # as if this machine had made it
    extra.parent.mkdir(parents=True)
    extra.write_text("{}")
    # its own runs folder: run folders a developer's checkout keeps (checkpoints of earlier runs) would
    # change the status lines the log shows
    env = {**os.environ, "OUT": str(out), "SWEEP_DEVICE": "cpu", "SWEEP_STORE": str(store),
           "PYTHON": sys.executable, "PAPER_REPRO_RUNS": str(tmp_path / "runs")}
    r = subprocess.run(["bash", str(SCRIPT), str(plan), "ci", "2", "300"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "0 to run" in r.stdout and "sweep exit 0" in r.stdout, r.stdout[-2000:]
    n_plan = r.stdout.count(": DONE (stored)")
    assert n_plan >= 2 and "not started" not in r.stdout
    assert (store / "codebook_size" / "ci").is_dir()               # seeded with every grid's records
    with tarfile.open(out / "results_mini_plan_ci.tgz") as t:
        assert t.getnames() == ["first_run/ci/0123456789ab.json"]
    assert (out / "sweep_mini_plan_ci.log").read_text().count("DONE") == n_plan


def test_collect_merges_only_new_records_and_names_the_pages(tmp_path):
    """--collect unpacks a returned tarball into the results store: a record the store lacks is
    copied (with its PNG), one it has is left as it is, and the pages showing the grid are named."""
    src = sorted((REPO_ROOT / "data" / "results" / "first_run" / "ci").glob("*.json"))
    src = [p for p in src if len(p.stem) == 12][:2]
    assert len(src) == 2, "needs two committed ci records of first_run"
    store = tmp_path / "store" / "first_run" / "ci"
    store.mkdir(parents=True)
    kept = store / src[0].name
    kept.write_text(src[0].read_text())
    tgz = tmp_path / "results_first_run_ci.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        for p in src:
            t.add(p, arcname=f"first_run/ci/{p.name}")
            t.add(p.with_suffix(".png"), arcname=f"first_run/ci/{p.stem}.png")
    before = kept.stat().st_mtime_ns
    env = {**os.environ, "PAPER_REPRO_RESULTS": str(tmp_path / "store"), "NO_REFRESH": "1",
           "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(SCRIPT), "--collect", str(tgz)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "collected 1 new ci record(s) of first_run" in r.stdout, r.stdout
    assert "pages to refresh:" in r.stdout and "first_training_run" in r.stdout, r.stdout
    assert (store / src[1].name).read_text() == src[1].read_text()
    assert (store / f"{src[1].stem}.png").read_bytes() == src[1].with_suffix(".png").read_bytes()
    assert kept.stat().st_mtime_ns == before
