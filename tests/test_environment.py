"""environment.yml (conda) must mirror pyproject.toml's pinned dependencies."""
import re
import tomllib
from pathlib import Path

import yaml

from paper_repro.paths import REPO_ROOT


def _norm(req: str) -> str:
    name, _, rest = re.match(r"([A-Za-z0-9_.\-]+)(.*)", req.strip()).group(1, 2, 2)
    return re.sub(r"[-_.]+", "-", name).lower() + rest.replace(" ", "")


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pins = {_norm(p) for p in pip if not p.startswith("-e")}
    py_pins = {_norm(p) for p in project["dependencies"]}
    assert conda_pins == py_pins, (
        f"only in environment.yml: {sorted(conda_pins - py_pins)}; only in pyproject.toml: {sorted(py_pins - conda_pins)}")
    assert "-e ." in pip, "environment.yml should install the package itself (-e .)"
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    major, minor = map(int, py.split("=")[1].split(".")[:2])
    low = tuple(map(int, re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"]).groups()))
    assert (major, minor) >= low


def test_nodeps_requirements_are_pinned():
    lines = [ln.strip() for ln in (REPO_ROOT / "requirements-nodeps.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines and all("==" in ln for ln in lines)


def test_git_commit_is_dirty_for_code_but_not_for_result_records(tmp_path, monkeypatch):
    """A sweep rewrites records under data/results/ while it runs; its later records must still say
    they came from a clean commit. A changed code file makes the commit +dirty."""
    import subprocess

    from paper_repro import provenance

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "data" / "results").mkdir(parents=True)
    (tmp_path / "data" / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    assert not provenance.git_commit().endswith("+dirty")
    (tmp_path / "data" / "results" / "r.json").write_text('{"new": 1}')
    assert not provenance.git_commit().endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit().endswith("+dirty")


def test_git_commit_of_a_copied_tree_is_the_senders_commit(tmp_path, monkeypatch):
    """On the GPU machine the tree arrives as a copy (its .git absent or stale): the commit it was
    copied from comes in $PAPER_REPRO_COMMIT, wins, and is marked +copy; anything but a full hex
    sha is ignored."""
    from paper_repro import provenance

    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)          # no .git here
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("PAPER_REPRO_COMMIT", raising=False)
    assert provenance.git_commit() == "unknown"
    sha = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("PAPER_REPRO_COMMIT", sha)
    assert provenance.git_commit() == sha + "+copy"
    for bad in ("HEAD", sha[:12], sha + "; rm -rf /"):
        monkeypatch.setenv("PAPER_REPRO_COMMIT", bad)
        assert provenance.git_commit() == "unknown"
    monkeypatch.setattr(provenance, "REPO_ROOT", Path(provenance.__file__).resolve().parents[1])
    monkeypatch.setenv("PAPER_REPRO_COMMIT", sha)                  # a checkout's own .git loses
    assert provenance.git_commit() == sha + "+copy"
