"""Hostile input and faults, as a new user would meet them: every case ends in one clear line on
stderr (no traceback), the documented exit code, and nothing on disk lost or overwritten.

Each row of CASES is (id, argv, environment, expected exit code, a phrase of the message). The
cases that need files on disk, a run folder in a given state, a sweep or the store follow as
functions. All runs are tiny (64 training images, 8 x 8 codes): the suite takes well under a minute.
"""
from __future__ import annotations

import errno
import gzip
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from paper_repro import exitcodes
from paper_repro.__main__ import main

TINY = ["--profile", "ci", "--quantizer", "vq", "--num-codes", "8", "--code-dim", "8", "--width", "0.125",
        "--train-images", "64", "--eval-images", "32", "--epochs", "1", "--batch-size", "16",
        "--eval-metrics", "usage,psnr", "--no-progress"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setattr("paper_repro.training.trainer.install_signal_handlers", lambda: None)
    monkeypatch.setenv("PAPER_REPRO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr("paper_repro.paths.RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr("paper_repro.experiments.runner.RUNS_DIR", tmp_path / "runs")
    monkeypatch.setenv("PAPER_REPRO_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in this process; (exit code, stdout, stderr). An exception escaping main() is a
    traceback for the user, so it fails the test."""
    try:
        code = main(list(argv))
    except SystemExit as e:           # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear(err: str, phrase: str):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert any(phrase.lower() in ln.lower() for ln in lines), f"{phrase!r} not in: {err!r}"


CASES = [
    ("lr-inf", ["--lr", "inf"], {}, 2, "finite number"),
    ("lr-nan", ["--lr", "nan"], {}, 2, "finite number"),
    ("lr-negative", ["--lr", "-1"], {}, 2, "lr must be > 0"),
    ("lr-zero", ["--lr", "0"], {}, 2, "lr must be > 0"),
    ("lr-beyond-float32", ["--lr", "1e39"], {}, 2, "float32"),
    ("epochs-zero", ["--epochs", "0"], {}, 2, "positive integer"),
    ("batch-negative", ["--batch-size", "-4"], {}, 2, "positive integer"),
    ("codes-zero", ["--num-codes", "0"], {}, 2, "positive integer"),
    ("dim-zero", ["--code-dim", "0"], {}, 2, "positive integer"),
    ("width-zero", ["--width", "0"], {}, 2, "width must be > 0"),
    ("max-steps-zero", ["--max-steps", "0"], {}, 2, "positive integer"),
    ("unknown-quantizer", ["--quantizer", "nope"], {}, 2, "unknown quantizer"),
    ("unknown-dataset", ["--dataset", "nope"], {}, 2, "nope"),
    ("unknown-metric", ["--eval-metrics", "usage,bogus"], {}, 2, "unknown eval metric"),
    ("replacement-typo", ["--quantizer-options", '{"replacement": {"treshold": 1}}'], {}, 2, "valid options: every"),
    ("replacement-not-dict", ["--quantizer-options", '{"replacement": 3}'], {}, 2, "replacement must be a dict"),
    ("option-inf", ["--quantizer-options", '{"beta": 1e999}'], {}, 2, "finite"),
    ("option-unknown", ["--quantizer-options", '{"nonexistent": 1}'], {}, 2, "unknown option"),
    ("option-not-object", ["--quantizer-options", "[1]"], {}, 2, "expected a JSON object"),
    ("option-bad-json", ["--quantizer-options", "{bad"], {}, 2, "not valid JSON"),
    ("nsvq-bad-flavor", ["--quantizer", "nsvq", "--quantizer-options", '{"flavor": "x"}'], {}, 2, "flavor"),
    ("device-mps", ["--device", "mps"], {}, 2, "device must be"),
    ("device-tpu", ["--device", "tpu"], {}, 2, "device must be"),
    ("device-cuda-absent", ["--device", "cuda"], {}, 2, "CUDA is not available"),
    ("data-root-missing", ["--data-root", "/nonexistent/fm"], {}, 2, "is not a folder"),
    ("env-data-missing", [], {"FASHION_MNIST_DIR": "/nonexistent/fm"}, 2, "is not a folder"),
    ("resume-and-restart", ["--resume", "--restart"], {}, 2, "exclude each other"),
    ("lr-diverges", ["--lr", "1e6"], {}, 3, "diverged"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line_and_the_exit_code(case, capsys, monkeypatch, tmp_path):
    name, argv, env, code, phrase = case
    if name == "device-cuda-absent":
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = ["train", *TINY, "--run-dir", str(tmp_path / "run"), *argv]
    got, out, err = cli(capsys, *args)
    assert got == code, (got, err)
    assert_clear(err, phrase)
    if code == exitcodes.NONFINITE:
        assert not (tmp_path / "run" / "record.json").exists()


def _config_file(tmp_path, **fields):
    from paper_repro.training import TrainConfig
    d = TrainConfig.from_profile("ci", quantizer="vq", num_codes=8, code_dim=8, width=0.125, train_images=64,
                                 eval_images=32, epochs=1, eval_metrics=["usage", "psnr"], progress=False).to_dict()
    d.update(fields)
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps(d))
    return p


CONFIG_CASES = [
    ("eval-metrics-string", {"eval_metrics": "usage"}, "must be a list"),
    ("deterministic-string", {"deterministic": "no"}, "true or false"),
    ("lr-string", {"lr": "0.1"}, "must be a number"),
    ("betas-out-of-range", {"betas": [0.9, 1.5]}, "betas"),
    ("unknown-field", {"learning_rate": 0.1}, "unknown config field"),
    ("grad-clip-negative", {"grad_clip": -1}, "grad_clip"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_file_fields_are_named(case, capsys, tmp_path):
    name, fields, phrase = case
    got, _, err = cli(capsys, "train", "--config", str(_config_file(tmp_path, **fields)),
                      "--run-dir", str(tmp_path / "run"))
    assert got == exitcodes.USAGE
    assert_clear(err, phrase)


def test_missing_invalid_and_non_object_config_files(capsys, tmp_path):
    got, _, err = cli(capsys, "train", "--config", str(tmp_path / "none.json"))
    assert got == 2 and "config file not found" in err
    (tmp_path / "bad.json").write_text("{not json")
    got, _, err = cli(capsys, "train", "--config", str(tmp_path / "bad.json"))
    assert got == 2 and "not valid JSON" in err
    (tmp_path / "list.json").write_text("[1, 2]")
    got, _, err = cli(capsys, "train", "--config", str(tmp_path / "list.json"))
    assert got == 2 and "JSON object" in err and "Traceback" not in err
    got, _, err = cli(capsys, "train", *TINY[2:], "--profile", "huge")
    assert got == 2 and "invalid choice: 'huge'" in err and "'cpu'" in err     # the choices come from PROFILES


def _fm_dir(tmp_path, which=("train", "t10k")) -> Path:
    from paper_repro.data import fashion_mnist as fm
    d = tmp_path / "fm"
    d.mkdir()
    for stem in which:
        name = f"{stem}-images-idx3-ubyte.gz"
        shutil.copyfile(fm.DEBIAN_DIR / name, d / name)
    return d


def test_incomplete_data_folder_is_an_error_naming_the_missing_file(capsys, tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").exists():
        pytest.skip("needs the Debian Fashion-MNIST files")
    d = _fm_dir(tmp_path, which=("train",))
    got, _, err = cli(capsys, "train", *TINY, "--data-root", str(d), "--run-dir", str(tmp_path / "run"))
    assert got == 2 and "t10k-images-idx3-ubyte.gz" in err and "Traceback" not in err


def test_garbage_data_file_is_an_error(capsys, tmp_path):
    d = tmp_path / "fm"
    d.mkdir()
    for stem in ("train", "t10k"):
        with gzip.open(d / f"{stem}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"not an idx file at all")
    got, _, err = cli(capsys, "train", *TINY, "--data-root", str(d), "--run-dir", str(tmp_path / "run"))
    assert got == 2 and "Traceback" not in err and str(d) in err


def test_record_names_its_data_and_other_data_is_never_reused(capsys, tmp_path, monkeypatch):
    if not Path("/usr/share/datasets/fashion-mnist").exists():
        pytest.skip("needs the Debian Fashion-MNIST files")
    run = tmp_path / "run"
    assert cli(capsys, "train", *TINY, "--run-dir", str(run))[0] == 0
    rec = json.loads((run / "record.json").read_text())
    assert rec["data"]["dataset"] == "fashion_mnist" and len(rec["data"]["fingerprint"]) == 16
    assert rec["data"]["files"]["train"]["sha256"]


# -- run folders: nothing is overwritten unless asked ----------------------------------------------
@pytest.fixture
def killed_run(capsys, tmp_path):
    """A run folder holding a checkpoint (a run stopped by its deadline after its first steps)."""
    run = tmp_path / "run"
    got, _, err = cli(capsys, "train", *TINY, "--run-dir", str(run), "--checkpoint-every", "2",
                      "--deadline", "1")           # a deadline in the past: checkpoint at once, exit 75
    assert got == exitcodes.INTERRUPTED, err
    ck = run / "checkpoint.pt"
    assert ck.exists()
    return run, ck


def test_rerun_without_resume_refuses_and_keeps_the_checkpoint(capsys, killed_run):
    run, ck = killed_run
    before = ck.read_bytes()
    got, _, err = cli(capsys, "train", *TINY, "--run-dir", str(run))
    assert got == 2
    assert_clear(err, "--resume continues it, --restart discards it")
    assert ck.read_bytes() == before


def test_resume_continues_and_restart_starts_again(capsys, killed_run):
    run, ck = killed_run
    assert cli(capsys, "train", *TINY, "--run-dir", str(run), "--resume")[0] == 0
    rec = json.loads((run / "record.json").read_text())
    assert rec["resumes"] == 1
    got, _, err = cli(capsys, "train", *TINY, "--run-dir", str(run))
    assert got == 2 and "finished run" in err                      # a finished run is not redone silently
    assert cli(capsys, "train", *TINY, "--run-dir", str(run), "--restart")[0] == 0
    assert json.loads((run / "record.json").read_text())["resumes"] == 0


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "not-a-dict"])
def test_unreadable_checkpoint_is_named_and_left_in_place(capsys, killed_run, damage):
    import torch
    run, ck = killed_run
    data = ck.read_bytes()
    if damage == "empty":
        ck.write_bytes(b"")
    elif damage == "truncated":
        ck.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        ck.write_bytes(os.urandom(4096))
    else:
        torch.save([1, 2, 3], ck)
    before = ck.read_bytes()
    got, _, err = cli(capsys, "train", *TINY, "--run-dir", str(run), "--resume")
    assert got == 2
    assert_clear(err, str(ck))
    assert ck.read_bytes() == before


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["PAPER_REPRO_RUNS"]) / "PWNED",))


def test_crafted_pickle_checkpoint_is_refused_and_never_executed(capsys, killed_run):
    run, ck = killed_run
    ck.write_bytes(pickle.dumps({"state": _Evil()}))
    got, _, err = cli(capsys, "train", *TINY, "--run-dir", str(run), "--resume")
    assert got == 2 and "cannot be loaded" in err
    assert not (Path(os.environ["PAPER_REPRO_RUNS"]) / "PWNED").exists()


def test_checkpoint_of_another_config_is_refused_with_both_hashes(capsys, killed_run):
    run, ck = killed_run
    got, _, err = cli(capsys, "train", *TINY, "--run-dir", str(run), "--resume", "--seed", "7")
    assert got == 2 and "belongs to config" in err and "Traceback" not in err


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_taken_over(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(str(os.getppid()))                 # a live process
    got, _, err = cli(capsys, "train", *TINY, "--run-dir", str(run))
    assert got == 2 and "in use by process" in err
    (run / ".lock").write_text("999999999")                       # no such process: stale
    assert cli(capsys, "train", *TINY, "--run-dir", str(run))[0] == 0
    assert not (run / ".lock").exists()


def test_full_disk_is_one_line_and_keeps_the_last_checkpoint(capsys, killed_run, monkeypatch):
    run, ck = killed_run
    before = ck.read_bytes()

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(ck))
    monkeypatch.setattr("paper_repro.training.trainer.atomic_torch_save", no_space)
    got, _, err = cli(capsys, "train", *TINY, "--run-dir", str(run), "--resume", "--checkpoint-every", "1")
    assert got == exitcodes.IO
    assert_clear(err, "No space left on device")
    assert ck.read_bytes() == before


# -- sweeps survive one bad run; the store survives one bad record --------------------------------
@pytest.fixture
def bad_grid(monkeypatch):
    from paper_repro.experiments import GRIDS
    from paper_repro.training import TrainConfig

    def grid(profile):
        base = dict(quantizer="vq", num_codes=8, code_dim=8, width=0.125, train_images=64, eval_images=32,
                    epochs=1, eval_metrics=["usage", "psnr"], progress=False)
        return [TrainConfig.from_profile("ci", **base), TrainConfig.from_profile("ci", **dict(base, lr=1e6)),
                TrainConfig.from_profile("ci", **dict(base, seed=1))]
    monkeypatch.setitem(GRIDS, "_bad", grid)
    return grid


def test_a_diverging_run_does_not_stop_the_sweep(capsys, bad_grid):
    got, out, err = cli(capsys, "sweep", "_bad", "--profile", "ci")
    assert got == exitcodes.FAILED and "Traceback" not in err + out
    statuses = [ln.split(": ")[1].split(" ")[0] for ln in out.splitlines() if ln.startswith("  ") and ": " in ln
                and " seed " in ln]
    assert sorted(statuses) == ["done", "done", "failed"], out
    assert "NonFiniteLossError" in out and "diverged" in out


def test_sweep_needs_one_grid_or_plan_and_names_a_bad_plan(capsys, tmp_path):
    got, _, err = cli(capsys, "sweep", "--profile", "ci")
    assert got == 2 and "a grid name or --plan" in err and "Traceback" not in err
    got, _, err = cli(capsys, "sweep", "first_run", "--plan", str(tmp_path / "p.json"))
    assert got == 2 and "one of the two" in err
    got, _, err = cli(capsys, "sweep", "--plan", str(tmp_path / "missing.json"))
    assert got == 2 and "missing.json" in err and "Traceback" not in err
    (tmp_path / "p.json").write_text('{"steps": [{"grid": "first_run", "where": {"quantizer": "vq"}}]}')
    got, _, err = cli(capsys, "sweep", "--plan", str(tmp_path / "p.json"), "--where", "seed=0")
    assert got == 2 and "own filters" in err


def test_a_corrupt_checkpoint_fails_its_run_only(capsys, bad_grid, tmp_path):
    from paper_repro.experiments import get_grid
    from paper_repro.experiments.runner import run_dir_for
    cfg = get_grid("_bad", "ci")[2]
    d = run_dir_for(cfg)
    d.mkdir(parents=True)
    (d / "checkpoint.pt").write_bytes(b"\x00garbage")
    got, out, _ = cli(capsys, "sweep", "_bad", "--profile", "ci")
    assert got == exitcodes.FAILED and "CheckpointError" in out
    assert (d / "checkpoint.pt").read_bytes() == b"\x00garbage"
    assert out.count(": done") == 1                                  # the healthy run finished


def test_a_stored_record_of_other_data_is_neither_reused_nor_overwritten(capsys, bad_grid):
    from paper_repro.experiments import get_grid, store
    from paper_repro.training import config_hash
    cli(capsys, "sweep", "_bad", "--profile", "ci")
    cfg = get_grid("_bad", "ci")[0]
    p = store.record_path("_bad", "ci", config_hash(cfg))
    rec = json.loads(p.read_text())
    rec["data"]["fingerprint"] = "0" * 16
    p.write_text(json.dumps(rec))
    before = p.read_bytes()
    got, out, _ = cli(capsys, "sweep", "_bad", "--profile", "ci")
    assert "other data" in out and p.read_bytes() == before


def test_a_truncated_record_is_named_and_the_rest_of_the_table_loads(capsys, bad_grid):
    from paper_repro.experiments import get_grid, store
    from paper_repro.training import config_hash
    cli(capsys, "sweep", "_bad", "--profile", "ci")
    cfg = get_grid("_bad", "ci")[0]
    p = store.record_path("_bad", "ci", config_hash(cfg))
    p.write_text(p.read_text()[:100])
    got, out, err = cli(capsys, "results", "_bad", "--profile", "ci")
    assert got == 0 and f"corrupt record left out: {p}" in err and "Traceback" not in err
    assert "1 stored run(s)" in out                                  # the other healthy run
    errors = []
    assert len(store.load_records("_bad", "ci", errors=errors)) == 1 and errors[0][0] == str(p)


def test_things_that_work_keep_working(capsys, tmp_path):
    got, out, _ = cli(capsys, "train", *TINY, "--dry-run")
    assert got == 0 and "config hash" in out
    assert cli(capsys, "grids")[0] == 0
    got, out, _ = cli(capsys, "results", "first_run", "--profile", "ci",
                      "--results-root", str(Path(__file__).resolve().parents[2] / "data" / "results"))
    assert got == 0 and "first_run at profile ci" in out


def test_config_json_is_data_never_code(capsys, tmp_path):
    marker = tmp_path / "EXECUTED"
    p = _config_file(tmp_path, quantizer=f"__import__('pathlib').Path('{marker}').touch()")
    got, _, err = cli(capsys, "train", "--config", str(p))
    assert got == 2 and "unknown quantizer" in err and not marker.exists()


def test_a_run_with_replacement_killed_and_resumed_ends_like_the_straight_run(capsys, tmp_path):
    opts = ["--quantizer-options", '{"replacement": {"every": 2, "reservoir_size": 24}}', "--epochs", "2"]
    assert cli(capsys, "train", *TINY, *opts, "--run-dir", str(tmp_path / "a"))[0] == 0
    got, _, _ = cli(capsys, "train", *TINY, *opts, "--run-dir", str(tmp_path / "b"), "--deadline", "1",
                    "--checkpoint-every", "3")
    assert got == exitcodes.INTERRUPTED
    assert cli(capsys, "train", *TINY, *opts, "--run-dir", str(tmp_path / "b"), "--resume")[0] == 0
    a, b = (json.loads((tmp_path / x / "record.json").read_text()) for x in "ab")
    assert b["resumes"] == 1 and a["config_hash"] == b["config_hash"]
    assert a["final"] == b["final"] and a["trace"] == b["trace"] and a["epochs"] == b["epochs"]
