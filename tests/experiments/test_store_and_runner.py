"""Results store (atomic, mergeable by copying, tidy table), grid runner (skip done, publish finished,
resume partial), load_grid (committed records of the highest-scale profile; never trains),
run_or_load (trains only when asked) and the CLI."""
import json
import re
import shutil

import pandas as pd
import pytest

import paper_repro.training.trainer as trainer_mod
from paper_repro.experiments import GRIDS, grids, load_grid, run_grid, run_or_load, store
from paper_repro.experiments.runner import run_dir_for
from paper_repro.training import CHECKPOINT_NAME, RECORD_NAME, config_hash, load_checkpoint, train
from paper_repro.training.trainer import StopAfter

from training._helpers import tiny_config, tiny_data

GRID = "_test_grid"


@pytest.fixture
def test_grid(monkeypatch):
    """A registered two-run grid (vq, nsvq) of tiny configs, trained on synthetic images."""
    def grid(profile):
        return [tiny_config(quantizer=q, checkpoint_every=5) for q in ("vq", "nsvq")]
    monkeypatch.setitem(GRIDS, GRID, grid)
    monkeypatch.setattr(trainer_mod, "load_data", lambda cfg: tiny_data())
    return grid


def _no_training(*a, **k):
    raise AssertionError("train() must not be called: the run is stored")


def test_run_grid_skips_stored_runs_and_load_results(tmp_path, test_grid, monkeypatch):
    root, runs = tmp_path / "results", tmp_path / "runs"
    s1 = run_grid(GRID, "gpu", root=root, runs_root=runs, verbose=False)
    assert list(s1["status"]) == ["done", "done"]
    files = sorted((root / GRID / "gpu").iterdir())
    assert sorted(f.suffix for f in files) == [".json", ".json", ".png", ".png"]
    assert not [f for f in files if f.name.startswith(".")]          # no temporaries left
    monkeypatch.setattr("paper_repro.experiments.runner.train", _no_training)
    s2 = run_grid(GRID, "gpu", root=root, runs_root=runs, verbose=False)
    assert list(s2["status"]) == ["stored", "stored"]
    df = store.load_results(GRID, "gpu", root)
    assert len(df) == 2 and set(df["quantizer"]) == {"vq", "nsvq"}
    for col in ("config_hash", "num_codes", "eval_usage", "eval_perplexity", "psnr", "train_epoch_usage",
                "git_commit", "device", "images_per_s", "record_path"):
        assert col in df.columns, col
    hashes = {config_hash(c.replace(experiment=GRID, profile="gpu")) for c in test_grid("gpu")}
    assert set(df["config_hash"]) == hashes
    rec = store.load_record(df["record_path"][0])
    assert rec["final"]["eval_usage"] == df["eval_usage"][0]


def test_finished_run_folder_is_published_and_partial_run_is_resumed(tmp_path, test_grid):
    root, runs = tmp_path / "results", tmp_path / "runs"
    vq, ns = grids.get_grid(GRID, "gpu")
    train(vq, run_dir=run_dir_for(vq, runs), data=tiny_data())           # finished, not stored
    train(ns, run_dir=run_dir_for(ns, runs), data=tiny_data(), callbacks=StopAfter(7))   # killed
    assert load_checkpoint(run_dir_for(ns, runs) / CHECKPOINT_NAME)["state"]["global_step"] == 5
    s = run_grid(GRID, "gpu", root=root, runs_root=runs, verbose=False)
    assert list(s["status"]) == ["published", "done"]
    rec = store.load_record(store.record_path(GRID, "gpu", config_hash(ns), root))
    assert rec["resumes"] == 1
    straight = train(ns, data=tiny_data())
    assert rec["final"] == straight["final"] and rec["epochs"] == straight["epochs"]


def test_every_profile_is_stored_under_data_results_and_complete_records_are_reused(monkeypatch):
    monkeypatch.delenv(store.ENV_VAR, raising=False)
    rec = {"status": "complete", "profile": "ci", "provenance": {"git_commit": "abc+dirty"}}
    assert store.is_reusable(rec)                       # the record is the result, whatever made it
    assert not store.is_reusable(dict(rec, status="killed"))
    for p in ("ci", "gpu", "paper"):
        assert store.results_root(p) == store.RESULTS_DIR


def test_merging_two_result_trees_is_copying_files(tmp_path, test_grid):
    a, b, merged = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    cfgs = grids.get_grid(GRID, "gpu")
    for cfg, root in zip(cfgs, (a, b)):              # two "GPU commands", one run each
        rec = train(cfg, run_dir=tmp_path / cfg.quantizer, data=tiny_data())
        store.write_record(rec, root)
    written = store.copy_results(a, merged) + store.copy_results(b, merged)
    assert len(written) == 2
    assert len(store.load_results(GRID, "gpu", merged)) == 2


def test_store_refuses_tampered_or_incomplete_records(tmp_path, test_grid):
    cfg = grids.get_grid(GRID, "gpu")[0]
    rec = train(cfg, data=tiny_data())
    bad = json.loads(json.dumps(rec))
    bad["config"]["lr"] = 1.0                          # config no longer matches its hash
    with pytest.raises(ValueError, match="does not match"):
        store.write_record(bad, tmp_path)
    with pytest.raises(ValueError, match="missing keys"):
        store.write_record({k: v for k, v in rec.items() if k != "final"}, tmp_path)
    with pytest.raises(ValueError, match="plain name"):
        store.results_dir("../x", "gpu", tmp_path)


def test_load_grid_auto_takes_the_highest_scale_profile_with_records_and_never_trains(
        tmp_path, test_grid, monkeypatch):
    root, runs = tmp_path / "results", tmp_path / "runs"
    with pytest.raises(FileNotFoundError, match=f"sweep {GRID} --profile ci"):
        load_grid(GRID, "auto", root=root)
    run_grid(GRID, "ci", root=root, runs_root=runs, verbose=False)
    monkeypatch.setattr("paper_repro.experiments.runner.train", _no_training)
    monkeypatch.setattr("paper_repro.experiments.runner.run_grid", _no_training)
    df, source = load_grid(GRID, "auto", root=root)
    assert set(df["profile"]) == {"ci"} and source.profile == "ci" and source.complete
    assert not source.evidence and "pipeline check" in source.sentence()
    # one gpu record (a partial grid) outranks a complete ci grid; the source says 1 of 2
    monkeypatch.undo()
    monkeypatch.setitem(GRIDS, GRID, test_grid)
    monkeypatch.setattr(trainer_mod, "load_data", lambda cfg: tiny_data())
    run_grid(GRID, "gpu", root=root, runs_root=runs, verbose=False)
    (next((root / GRID / "gpu").glob("*.json"))).unlink()
    monkeypatch.setattr("paper_repro.experiments.runner.train", _no_training)
    df, source = run_or_load(GRID, "auto", root=root, runs_root=runs)
    assert set(df["profile"]) == {"gpu"} and (source.runs, source.grid_runs) == (1, 2)
    assert source.seeds == (3,) and source.evidence
    assert "1 of its 2 runs at profile gpu (chosen by profile=auto" in source.sentence()
    with pytest.raises(ValueError, match="concrete profile"):
        run_or_load(GRID, "auto", train=True, root=root, runs_root=runs)


def test_run_or_load_time_budget_stops_cleanly_and_a_second_call_resumes(tmp_path, test_grid):
    root, runs = tmp_path / "results", tmp_path / "runs"
    with pytest.raises(RuntimeError, match="run again to resume"):
        run_or_load(GRID, "gpu", train=True, root=root, runs_root=runs, time_budget_s=1e-9)
    assert not list((root / GRID / "gpu").glob("*.json")) if (root / GRID / "gpu").exists() else True
    assert all((run_dir_for(c, runs) / CHECKPOINT_NAME).exists() for c in grids.get_grid(GRID, "gpu"))
    df, source = run_or_load(GRID, "gpu", train=True, root=root, runs_root=runs)
    assert source.runs == 2 and len(df) == 2
    straight = train(grids.get_grid(GRID, "gpu")[1], data=tiny_data())
    rec = store.load_record(df.loc[df.quantizer == "nsvq", "record_path"].item())
    assert rec["resumes"] == 1 and rec["final"] == straight["final"]


def test_unknown_grid_and_bad_jobs_are_named():
    with pytest.raises(ValueError, match="unknown grid"):
        run_grid("nope", "ci")
    with pytest.raises(ValueError, match="jobs"):
        run_grid("first_run", "ci", jobs=0)
    with pytest.raises(ValueError, match="concrete profile"):
        run_grid("first_run", "auto")


def test_first_run_grid_definition():
    for prof in ("ci", "gpu"):
        cfgs = grids.get_grid("first_run", prof)
        assert {c.quantizer for c in cfgs} == {"vq", "nsvq"}
        assert {(c.num_codes, c.code_dim, c.dataset) for c in cfgs} == {(1024, 64, "fashion_mnist")}
    ci = grids.get_grid("first_run", "ci")
    assert all(c.width == 0.25 and c.train_images == 2048 and c.epochs == 2 for c in ci)
    assert all(c.train_images is None for c in grids.get_grid("first_run", "gpu"))


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_dry_run_and_errors(capsys):
    from paper_repro.__main__ import main
    assert main(["train", "--dry-run", "--quantizer", "nsvq", "--num-codes", "512"]) == 0
    out = capsys.readouterr().out
    cfg = json.loads(out[:out.rindex("}") + 1])
    assert cfg["quantizer"] == "nsvq" and cfg["num_codes"] == 512 and cfg["profile"] == "ci"
    from paper_repro.training import TrainConfig
    assert f"config hash: {config_hash(TrainConfig.from_dict(cfg))}" in out
    assert main(["train", "--dry-run", "--quantizer", "bogus"]) == 2
    assert "unknown quantizer 'bogus'" in capsys.readouterr().err
    assert main(["train", "--dry-run", "--num-codes", "-3"]) == 2
    assert "num_codes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--quantizer-options", "{bad"])
    assert main(["results", "first_run", "--profile", "paper", "--results-root", "/nonexistent"]) == 1
    assert main(["sweep", "first_run", "--profile", "paper", "--fit"]) == 2
    assert "fit needs a time budget" in capsys.readouterr().err
    # the sweep's closing lines: a reason only where a run has one, also when pandas stores the missing
    # ones as NaN (a column mixing strings and None)
    from paper_repro.__main__ import summary_lines
    from paper_repro.experiments.runner import _summary_row
    a, b = grids.get_grid("first_run", "ci")[:2]
    frame = pd.DataFrame([_summary_row(a, "stored"), _summary_row(b, "not started", error="waits")])
    assert [ln.split(" seed ")[1] for ln in summary_lines(frame)] == [f"{a.seed}: stored", f"{b.seed}: not started (waits)"]
    assert main(["sweep", "first_run", "--profile", "paper", "--fit"]) == 2
    assert "fit needs a time budget" in capsys.readouterr().err
    assert main(["sweep", "first_run", "--profile", "paper", "--fit", "0.5", "--time-budget", "60"]) == 2
    assert "a number >= 1; got 0.5" in capsys.readouterr().err


def test_a_sweep_whose_data_are_missing_starts_nothing_and_says_so_once(tmp_path, monkeypatch, capsys):
    """A grid on absent data fails before its first run, with one message naming how many runs need
    which data set, instead of each run starting up and failing the same way."""
    from paper_repro.__main__ import main
    from paper_repro.data import DatasetNotFoundError
    from paper_repro.experiments.runner import run_configs
    monkeypatch.delenv("CELEBA_HQ_DIR", raising=False)
    monkeypatch.setattr("paper_repro.experiments.runner.train", _no_training)
    root, runs = tmp_path / "results", tmp_path / "runs"
    n = len(grids.get_grid("first_run", "paper"))
    assert main(["sweep", "first_run", "--profile", "paper", "--results-root", str(root),
                 "--runs-root", str(runs), "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert "nothing was started" in err and err.count("no root given") == 1
    assert f"{n} run(s) need celeba_hq" in err
    assert not runs.exists() and not root.exists()
    # two data sets, one missing: one line for the missing one; the present one is not named
    fm = tiny_config(experiment="mixed", profile="ci")
    inet = [fm.replace(seed=s, dataset="imagenet", data_root=str(tmp_path / "no_imagenet")) for s in (0, 1)]
    with pytest.raises(DatasetNotFoundError, match=r"(?s)nothing was started.*2 run\(s\) need imagenet: "
                                                   r"imagenet: directory .*no_imagenet does not exist") as e:
        run_configs([fm] + inet, "mixed", "ci", root=root, runs_root=runs, verbose=False)
    assert "fashion_mnist" not in str(e.value) and not runs.exists()


def test_cli_train_deadline_exits_75_then_resume_publishes(tmp_path, monkeypatch, capsys):
    from paper_repro.__main__ import main
    monkeypatch.setattr(trainer_mod, "load_data", lambda cfg: tiny_data())
    cfg = tiny_config(experiment="cli", profile="gpu")
    (tmp_path / "c.json").write_text(cfg.to_json())
    args = ["train", "--config", str(tmp_path / "c.json"), "--run-dir", str(tmp_path / "run"),
            "--results-root", str(tmp_path / "res"), "--publish", "--resume"]
    assert main(args + ["--deadline", "1"]) == 75
    assert main(args) == 0
    assert store.record_path("cli", "gpu", config_hash(cfg), tmp_path / "res").exists()


@pytest.mark.slow
def test_worker_processes_run_and_publish(tmp_path, monkeypatch):
    """jobs=2: each run is a `python -m paper_repro train` worker writing its own record."""
    from paper_repro.data import DatasetNotFoundError, load_tensor_dataset
    try:
        load_tensor_dataset("fashion_mnist", "val", limit=2)
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST not available")

    def grid(profile):
        return [tiny_config(quantizer=q, image_size=32, train_images=64, eval_images=32, epochs=1,
                            eval_metrics=["usage"]) for q in ("vq", "nsvq")]
    monkeypatch.setitem(GRIDS, GRID, grid)
    root, runs = tmp_path / "results", tmp_path / "runs"
    s = run_grid(GRID, "gpu", jobs=2, root=root, runs_root=runs, verbose=False)
    assert list(s["status"]) == ["done", "done"], s.to_string()
    df = store.load_results(GRID, "gpu", root)
    assert len(df) == 2 and (df["steps"] == 8).all() and (df["eval_images"] == 32).all()
    assert all((runs / GRID / "gpu" / h / "worker.log").exists() for h in df["config_hash"])
    # fit with workers: a free worker takes the first run of the queue that fits, not the queue's head
    from paper_repro.experiments import runner
    cfgs = [c.replace(seed=7) for c in grids.get_grid(GRID, "gpu")]
    monkeypatch.setattr(runner, "_expected_seconds", lambda todo, *a: {config_hash(cfgs[0]): 1e6,
                                                                       config_hash(cfgs[1]): 1.0})
    s = runner.run_configs(cfgs, "fit", "gpu", jobs=2, root=root, runs_root=runs, time_budget_s=3600,
                           fit=1.25, verbose=False)
    assert list(zip(s["quantizer"], s["status"])) == [("nsvq", "done"), ("vq", "not started")], s.to_string()
    assert not run_dir_for(cfgs[0], runs).exists()


def test_staged_grid_adds_one_stage_per_arm():
    cfgs = grids.get_grid("staged", "cpu")
    arms = {c.tag: c for c in cfgs if c.num_codes == 1024 and c.seed == 0}
    assert list(arms) == ["SimVQ", "NS-VQ", "NS-VQ +a", "NS-VQ +a+b", "NS-VQ +a+b+c", "NS-VQ +a+b+c (fixed)"]
    last = arms["NS-VQ"].epochs - 1
    assert last == 2     # cpu: epoch 0 trains everything, epoch 1 consolidates (b), epoch 2 refines (c)
    assert "replacement" not in arms["NS-VQ"].quantizer_options and "replacement" in arms["NS-VQ +a"].quantizer_options
    assert arms["NS-VQ +a"].freeze_encoder_at_epoch is None and arms["NS-VQ +a+b"].freeze_encoder_at_epoch == last - 1
    assert arms["NS-VQ +a+b+c"].freeze_encoder_at_epoch == last - 1
    assert arms["NS-VQ +a+b"].refine_from_epoch is None and arms["NS-VQ +a+b+c"].refine_from_epoch == last
    # with two epochs (ci) the two stages share the last one
    ci = {c.tag: c for c in grids.get_grid("staged", "ci") if c.num_codes == 1024}
    assert ci["NS-VQ +a+b+c"].freeze_encoder_at_epoch == ci["NS-VQ +a+b+c"].refine_from_epoch == 1
    # (c) weights its GAN term as VQGAN does; the fixed-weight arm differs from it only there, and its
    # hash is the one the grid's +a+b+c had before the weighting was a field (its records stay valid)
    from paper_repro.training import config_hash
    adaptive, fixed = arms["NS-VQ +a+b+c"], arms["NS-VQ +a+b+c (fixed)"]
    assert (adaptive.refine_gan_weighting, adaptive.refine_gan_weight) == ("adaptive", 0.8)
    assert (fixed.refine_gan_weighting, fixed.refine_gan_weight) == ("fixed", 0.1)
    assert adaptive.replace(refine_gan_weighting="fixed", refine_gan_weight=0.1, tag=fixed.tag) == fixed
    assert config_hash(fixed) == "177943943af8"
    assert {c.num_codes for c in cfgs} == {1024, 8192} and len(cfgs) == 6 * 2 * 3


def test_sweep_filter_selects_a_slice_and_refuses_typos():
    from paper_repro.__main__ import parse_where
    from paper_repro.experiments.grids import get_grid
    from paper_repro.experiments.runner import select
    cfgs = get_grid("codebook_size", "cpu")
    where = parse_where(["num_codes=1024", "code_dim=64", "tag=NS-VQ"])
    assert where == {"num_codes": 1024, "code_dim": 64, "tag": "NS-VQ"}
    picked = select(cfgs, where)
    assert [c.seed for c in picked] == [0, 1, 2]
    assert all(c.quantizer == "nsvq" and c.num_codes == 1024 and c.code_dim == 64 for c in picked)
    assert len(select(cfgs, {"num_codes": 1024.0})) == 36 and select(cfgs, None) == cfgs
    with pytest.raises(ValueError, match="unknown config field"):
        select(cfgs, {"num_code": 1024})
    with pytest.raises(ValueError, match="matches"):
        select(cfgs, {"num_codes": 1000})
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_where(["num_codes"])


def test_a_config_two_grids_hold_is_trained_once_and_shared(tmp_path, test_grid, monkeypatch):
    root, runs = tmp_path / "results", tmp_path / "runs"
    run_grid(GRID, "gpu", root=root, runs_root=runs, verbose=False)
    other = "_test_grid_other"

    def grid2(profile):       # the nsvq run of the first grid (another tag) and one new run
        return [tiny_config(quantizer="nsvq", checkpoint_every=5, tag="shared arm"),
                tiny_config(quantizer="ema", checkpoint_every=5)]
    monkeypatch.setitem(GRIDS, other, grid2)
    trained = []
    real_train = trainer_mod.train

    def spy(cfg, *a, **k):
        trained.append(cfg.quantizer)
        return real_train(cfg, *a, **k)
    monkeypatch.setattr("paper_repro.experiments.runner.train", spy)
    s = run_grid(other, "gpu", root=root, runs_root=runs, verbose=False)
    assert list(s["status"]) == ["shared", "done"] and trained == ["ema"]
    df = store.load_results(other, "gpu", root)
    shared = df[df["quantizer"] == "nsvq"].iloc[0]
    rec = store.load_record(shared["record_path"])
    assert rec["experiment"] == other and rec["config"]["tag"] == "shared arm"
    assert rec["shared_from"]["experiment"] == GRID
    original = store.load_records(GRID, "gpu", root)
    assert next(r for r in original if r["config"]["quantizer"] == "nsvq")["final"] == rec["final"]
    assert store.validate_record(rec)["config_hash"] == shared["config_hash"]
    assert list(run_grid(other, "gpu", root=root, runs_root=runs, verbose=False)["status"]) == ["stored", "stored"]


def test_the_cpu_plan_names_real_grids_and_slices_and_covers_every_cpu_grid():
    """scripts/cpu_plan.json (what scripts/cpu_chain.sh runs): every step's grid exists and its filter
    selects configs; together the steps cover every config of every grid defined at cpu (the pilot,
    complete, aside)."""
    from paper_repro.experiments.runner import load_plan, select
    from paper_repro.paths import REPO_ROOT

    assert "--plan scripts/cpu_plan.json --profile cpu" in (REPO_ROOT / "scripts" / "cpu_chain.sh").read_text()
    covered = set()
    for step in load_plan(REPO_ROOT / "scripts" / "cpu_plan.json"):
        cfgs = select(grids.get_grid(step["grid"], "cpu"), step.get("where"))
        covered |= {(step["grid"], config_hash(c)) for c in cfgs}
    wanted = {(g, config_hash(c)) for g in GRIDS if g != "pilot" and not g.startswith("_")
              for c in grids.get_grid(g, "cpu")}
    assert wanted <= covered, f"configs no plan step runs: {sorted(wanted - covered)[:5]}"


def test_a_plan_runs_its_slices_as_one_queue_and_trains_a_shared_config_once(tmp_path, test_grid, monkeypatch):
    from paper_repro.experiments.runner import load_plan, run_plan
    other = "_test_grid_b"
    monkeypatch.setitem(GRIDS, other, lambda profile: [c.replace(experiment=other) for c in test_grid(profile)])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"grid": GRID, "where": {"quantizer": "nsvq"}}, {"grid": other}]}))
    trained = []
    real = trainer_mod.train
    monkeypatch.setattr("paper_repro.experiments.runner.train",
                        lambda cfg, **kw: trained.append((cfg.experiment, cfg.quantizer)) or real(cfg, **kw))
    root, runs = tmp_path / "results", tmp_path / "runs"
    s = run_plan(load_plan(plan), "gpu", root=root, runs_root=runs, verbose=False)
    assert list(zip(s["grid"], s["quantizer"], s["status"])) == [
        (GRID, "nsvq", "done"), (other, "vq", "done"), (other, "nsvq", "shared")]
    assert trained == [(GRID, "nsvq"), (other, "vq")]          # the nsvq config once, for the first grid
    assert len(store.load_records(other, "gpu", root)) == 2
    assert set(run_plan(load_plan(plan), "gpu", root=root, runs_root=runs, verbose=False)["status"]) == {"stored"}
    for bad, msg in [({"steps": []}, "non-empty list"), ({"steps": [{"grid": "nope"}]}, "step 0"),
                     ({"steps": [{"grid": GRID, "where": 3}]}, "step 0"), ({"steps": [{"grid": GRID, "x": 1}]}, "step 0")]:
        plan.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=msg):
            load_plan(plan)
    plan.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_plan(plan)


def test_collect_copies_only_new_records_of_the_profile_and_names_the_pages_they_change(tmp_path, monkeypatch):
    from paper_repro.build import book
    from paper_repro.paths import RESULTS_DIR
    src, dst = tmp_path / "sweep" / "data" / "results", tmp_path / "main"
    pilot = sorted((RESULTS_DIR / "pilot" / "cpu").glob("*.json"))[:3]
    ci_rec = sorted((RESULTS_DIR / "first_run" / "ci").glob("*.json"))[0]
    for p, grid, prof in [(p, "pilot", "cpu") for p in pilot] + [(ci_rec, "first_run", "ci")]:
        (src / grid / prof).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, src / grid / prof / p.name)
    (src / "bench_training").mkdir()
    shutil.copy(RESULTS_DIR / "bench_training" / "cpu-2cores.provenance.json", src / "bench_training")   # not a record
    (dst / "pilot" / "cpu").mkdir(parents=True)
    kept = dst / "pilot" / "cpu" / pilot[0].name
    kept.write_text(pilot[0].read_text())                 # already collected: must stay as it is
    before = kept.stat().st_mtime_ns
    monkeypatch.setenv(store.ENV_VAR, str(dst))
    refreshed = []
    monkeypatch.setattr(book, "refresh_notebooks", lambda names: refreshed.append(list(names)))
    pages = book.collect(src, "cpu")
    assert sorted(p.name for p in (dst / "pilot" / "cpu").glob("*.json")) == sorted(p.name for p in pilot)
    assert kept.stat().st_mtime_ns == before
    assert not (dst / "first_run").exists()                # another profile's record is left where it was
    assert not (dst / "bench_training").exists()
    assert pages == ["pilot", "verdicts"] and refreshed == [pages]
    assert book.collect(src, "cpu") == [] and len(refreshed) == 1     # nothing new: nothing to refresh
    with pytest.raises(FileNotFoundError, match="no results tree"):
        book.collect(tmp_path / "nowhere", "cpu")


def test_collect_skips_the_records_the_sweeps_checkout_had_committed(tmp_path, monkeypatch):
    """A record removed here (superseded by a fix) is still in the sweep's checkout, committed at the
    commit it started from: collect must not bring it back; what the sweep trained (untracked) it copies."""
    import subprocess
    from paper_repro.build import book
    from paper_repro.paths import RESULTS_DIR
    repo = tmp_path / "sweep"
    src, dst = repo / "data" / "results", tmp_path / "main"
    old, new = sorted((RESULTS_DIR / "pilot" / "cpu").glob("*.json"))[:2]
    (src / "pilot" / "cpu").mkdir(parents=True)
    for p in (old, new):
        shutil.copy(p, src / "pilot" / "cpu" / p.name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["-C", str(repo), "add", f"data/results/pilot/cpu/{old.name}"], check=True)
    subprocess.run(git + ["-C", str(repo), "commit", "-q", "-m", "committed record"], check=True)
    monkeypatch.setenv(store.ENV_VAR, str(dst))
    monkeypatch.setattr(book, "refresh_notebooks", lambda names: None)
    assert book.collect(src, "cpu") == ["pilot", "verdicts"]
    assert [p.name for p in (dst / "pilot" / "cpu").glob("*.json")] == [new.name]


def test_plan_status_is_a_query_with_states_and_estimates_from_similar_stored_runs(tmp_path, test_grid,
                                                                                    monkeypatch, capsys):
    """`sweep --dry-run`: stored / shareable / queued twice / checkpoint / to run, estimates from the
    most specific matching stored runs, and nothing in the store or the run folders changes."""
    from paper_repro.__main__ import main
    from paper_repro.experiments.runner import estimate_seconds, load_plan, plan_configs, plan_status
    other = "_test_grid_b"
    monkeypatch.setitem(GRIDS, other, lambda profile: [c.replace(experiment=other) for c in test_grid(profile)])
    root, runs = tmp_path / "results", tmp_path / "runs"
    run_grid(GRID, "gpu", root=root, runs_root=runs, verbose=False, where={"quantizer": "vq"})
    p = next((root / GRID / "gpu").glob("*.json"))
    rec = json.loads(p.read_text())
    p.write_text(json.dumps(dict(rec, train_seconds=100.0)))       # a known cost (not hashed)
    ns = grids.get_grid(GRID, "gpu")[1]
    train(ns, run_dir=run_dir_for(ns, runs), data=tiny_data(), callbacks=StopAfter(7))
    def snapshot():
        return sorted((f, f.stat().st_mtime_ns) for d in (root, runs) for f in d.rglob("*") if f.is_file())
    before = snapshot()
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"grid": GRID}, {"grid": other}]}))
    steps = plan_configs(load_plan(plan), "gpu")
    assert [label for label, _ in steps] == [GRID, other]
    st = plan_status([c for _, cs in steps for c in cs], "gpu", root=root, runs_root=runs)
    assert list(zip(st["grid"], st["quantizer"], st["state"])) == [
        (GRID, "vq", "stored"), (GRID, "nsvq", "checkpoint"), (other, "vq", "shareable"), (other, "nsvq", "queued twice")]
    # the checkpoint holds step 5 (checkpoint_every=5; the kill after step 7 lost 6 and 7) of the 16 steps
    # of the stored vq run of the same shape: 11/16 of its 100 s to go
    assert st["est_seconds"].tolist()[1] == 68.8 and st["est_from"][1].startswith("same num_codes")
    assert st["est_seconds"].isna().tolist() == [True, False, True, True]
    assert snapshot() == before
    # the most specific level wins; nothing stored -> no estimate
    vq_cfg, ns_cfg = (c.to_dict() for c in grids.get_grid(GRID, "gpu"))
    assert estimate_seconds(ns, [(vq_cfg, 10.0, 8), (ns_cfg, 50.0, 8), (ns_cfg, 70.0, 8)]) == (60.0, 0)
    assert estimate_seconds(ns, [(dict(vq_cfg, num_codes=7), 10.0, 8)]) == (10.0, 2)
    assert estimate_seconds(ns, []) == (None, -1)
    # a staged run (here: encoder frozen) is not estimated from plain runs of its quantizer, but from its own
    frozen = ns.replace(freeze_encoder_at_epoch=1)
    assert estimate_seconds(frozen, [(ns_cfg, 50.0, 8), (dict(vq_cfg, num_codes=7), 10.0, 8)]) == (50.0, 1)
    assert estimate_seconds(frozen, [(ns_cfg, 50.0, 8), (frozen.to_dict(), 90.0, 8)]) == (90.0, 0)
    # a checkpoint's steps count as done: each matching run's time scaled to the share still to go
    assert estimate_seconds(ns, [(ns_cfg, 40.0, 8), (ns_cfg, 80.0, 16)], done_steps=6) == (30.0, 0)   # median of 10 and 50
    assert estimate_seconds(ns, [(ns_cfg, 40.0, 8)], done_steps=9) == (0.0, 0)
    assert estimate_seconds(ns, [(ns_cfg, 40.0, None)], done_steps=6) == (40.0, 0)    # steps unknown: whole
    assert main(["sweep", "--plan", str(plan), "--profile", "gpu", "--dry-run", "--jobs", "2",
                 "--results-root", str(root), "--runs-root", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "total: 4 runs, 1 stored, 1 to train (~0.0 h of training" in out and "at --jobs 2" in out
    # the sweep itself: resumes the checkpoint, shares both runs with the other grid; one line per run,
    # a reason in parentheses only where there is one
    assert main(["sweep", "--plan", str(plan), "--profile", "gpu", "--results-root", str(root),
                 "--runs-root", str(runs)]) == 0
    lines = [ln.split(" seed ")[-1] for ln in capsys.readouterr().out.splitlines()
             if re.match(rf"  {GRID}(_b)? \w+ \w+ seed \d+: ", ln)]
    assert lines == ["3: stored", "3: shared", "3: done", "3: shared"], lines


def test_fit_starts_only_runs_expected_to_finish_within_the_time_budget(tmp_path, test_grid):
    """--fit: estimates from stored runs of the same shape (other seeds here); a run that would not
    finish is not started (no run folder, 'not started' naming why); one with no estimate starts."""
    root, runs = tmp_path / "results", tmp_path / "runs"
    other_seed = [c.replace(seed=4) for c in grids.get_grid(GRID, "gpu")]
    from paper_repro.experiments.runner import run_configs
    run_configs(other_seed, "costs", "gpu", root=root, runs_root=runs, verbose=False)
    for p in (root / GRID / "gpu").glob("*.json"):
        rec = json.loads(p.read_text())
        p.write_text(json.dumps(dict(rec, train_seconds={"vq": 1.0, "nsvq": 1e6}[rec["config"]["quantizer"]])))
    with pytest.raises(ValueError, match="needs a time budget"):
        run_grid(GRID, "gpu", root=root, runs_root=runs, fit=1.25, verbose=False)
    s = run_grid(GRID, "gpu", root=root, runs_root=runs, time_budget_s=3600, fit=1.25, verbose=False)
    assert list(zip(s["quantizer"], s["status"])) == [("vq", "done"), ("nsvq", "not started")]
    assert "waits for a later sweep" in s["error"][1] and "16667 min" in s["error"][1]
    ns = grids.get_grid(GRID, "gpu")[1]
    assert not run_dir_for(ns, runs).exists()
    # without fit the same budget starts it; with nothing stored at the profile there is no estimate: it starts
    s = run_grid(GRID, "gpu", root=tmp_path / "empty", runs_root=tmp_path / "runs2", time_budget_s=3600,
                 fit=1.25, verbose=False)
    assert list(s["status"]) == ["done", "done"]


def test_costly_order_trains_the_longest_expected_runs_first_and_keeps_plan_order_on_ties(tmp_path, test_grid,
                                                                                           monkeypatch):
    """order="costly" (sweep --order costly, used on a lent GPU): the queue sorted by the stored similar
    runs' training time, longest first; no estimate counts as longest; "plan" keeps the given order."""
    from paper_repro.experiments.runner import run_configs
    root, runs = tmp_path / "results", tmp_path / "runs"
    run_configs([c.replace(seed=4) for c in grids.get_grid(GRID, "gpu")], "costs", "gpu", root=root,
                runs_root=runs, verbose=False)
    for p in (root / GRID / "gpu").glob("*.json"):
        rec = json.loads(p.read_text())
        p.write_text(json.dumps(dict(rec, train_seconds={"vq": 1.0, "nsvq": 50.0}[rec["config"]["quantizer"]])))
    trained = []
    real = trainer_mod.train
    monkeypatch.setattr("paper_repro.experiments.runner.train",
                        lambda cfg, **kw: trained.append((cfg.quantizer, cfg.seed)) or real(cfg, **kw))
    cfgs = [c.replace(seed=s) for s in (5, 6) for c in grids.get_grid(GRID, "gpu")]     # vq, nsvq, vq, nsvq
    s = run_configs(cfgs, "q", "gpu", root=root, runs_root=runs, verbose=False, order="costly")
    assert trained == [("nsvq", 5), ("nsvq", 6), ("vq", 5), ("vq", 6)]
    assert set(s["status"]) == {"done"}
    trained.clear()
    run_configs([c.replace(seed=7) for c in grids.get_grid(GRID, "gpu")], "q", "gpu", root=root,
                runs_root=runs, verbose=False)
    assert trained == [("vq", 7), ("nsvq", 7)]                                          # plan order
    trained.clear()
    run_configs([c.replace(seed=8) for c in grids.get_grid(GRID, "gpu")], "q", "gpu", root=tmp_path / "empty",
                runs_root=runs, verbose=False, order="costly")
    assert trained == [("vq", 8), ("nsvq", 8)]                     # nothing stored: no estimates, a tie
    # a GPU's time says nothing of the CPU's: a record trained on cuda is no CPU estimate (the nsvq run
    # then falls back to the vq runs of its shape: a tie, plan order), but it is the estimate on cuda
    from paper_repro.experiments.runner import plan_status
    p = next(p for p in (root / GRID / "gpu").glob("*.json")
             if json.loads(p.read_text())["config"]["quantizer"] == "nsvq" and json.loads(p.read_text())["config"]["seed"] == 4)
    rec = json.loads(p.read_text())
    for q in (root / GRID / "gpu").glob("*.json"):
        r = json.loads(q.read_text())
        if r["config"]["quantizer"] == "nsvq" and q != p:
            q.unlink()
            q.with_suffix(".png").unlink(missing_ok=True)
    p.write_text(json.dumps(dict(rec, train_seconds=1e6, provenance=dict(rec["provenance"], device="cuda: Some GPU"))))
    trained.clear()
    nine = [c.replace(seed=9) for c in grids.get_grid(GRID, "gpu")]
    on_cpu = plan_status(nine, "gpu", root=root, runs_root=runs)["est_seconds"].tolist()
    assert on_cpu[0] == on_cpu[1] < 100                   # both from the vq runs of the same shape
    assert plan_status(nine, "gpu", root=root, runs_root=runs, device="cuda")["est_seconds"].tolist() == [1e6, 1e6]
    run_configs(nine, "q", "gpu", root=root, runs_root=runs, verbose=False, order="costly")
    assert trained == [("vq", 9), ("nsvq", 9)]
    with pytest.raises(ValueError, match="order must be one of"):
        run_configs(cfgs, "q", "gpu", root=root, runs_root=runs, verbose=False, order="cheap")
