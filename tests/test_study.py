"""The committed-study helper: storage with provenance, and the statistical recheck rule."""
import json
import math

import pandas as pd
import pytest

from paper_repro.study import Study

S = Study("unit", keys=("arm", "size"), floor={"frac": 0.01, "count": 1.0}, command="python -m nothing")


def _table(values, arm="a", size=1):
    """One cell, len(values) seeds, both statistics set from ``values``."""
    return pd.DataFrame([{"arm": arm, "size": size, "seed": i, "frac": v, "count": v}
                         for i, v in enumerate(values)])


def test_recheck_tolerance_is_the_declared_rule():
    ref = _table([0.1, 0.2, 0.3, 0.4])                            # sd 0.1291, N = 4
    s = float(ref["frac"].std(ddof=1))
    tol = S.k * s * math.sqrt(1 / 2 + 1 / 4) + S.floor["frac"]
    inside = _table([0.25 + tol - 1e-6] * 2)                       # recomputed mean just inside
    outside = _table([0.25 + tol + 1e-6] * 2)
    a = S.recheck(inside, ref).set_index("statistic")
    b = S.recheck(outside, ref).set_index("statistic")
    assert a.loc["frac", "tolerance"] == pytest.approx(tol)
    assert a.loc["frac", "committed"] == pytest.approx(0.25)
    assert a.loc["frac", "ok"] and not b.loc["frac", "ok"]
    # a statistic with no spread is checked against its resolution alone
    flat = S.recheck(_table([2.0, 2.0]), _table([1.0, 1.0, 1.0])).set_index("statistic")
    assert flat.loc["count", "tolerance"] == S.floor["count"] and flat.loc["count", "ok"]
    assert not flat.loc["frac", "ok"]                              # 1.0 off, resolution 0.01
    rep = S.report(S.recheck(outside, ref))
    assert "outside: a / 1 / frac" in rep and rep.splitlines()[0].endswith("\u2717")
    assert S.report(S.recheck(ref, ref)).endswith("2 of 2 means within tolerance of the committed study \u2713")


def test_a_check_whose_tolerance_spans_the_statistics_range_is_counted_as_one_that_cannot_fail():
    bounded = Study("unit", keys=("arm", "size"), floor={"frac": 0.01, "count": 1.0}, command="python -m nothing",
                    bounds={"frac": (0.0, 1.0)})
    wide, narrow = _table([0.0, 1.0, 0.0, 1.0]), _table([0.5, 0.51, 0.49, 0.5])   # sd 0.58 vs 0.008
    c = bounded.recheck(_table([0.5, 0.5]), wide).set_index("statistic")
    assert c.loc["frac", "tolerance"] > 1 and not c.loc["frac", "can_fail"]    # 0.5 +- >1 covers [0, 1]
    assert c.loc["count", "can_fail"]                                         # unbounded: always can
    assert bounded.recheck(_table([0.5, 0.5]), narrow).set_index("statistic").loc["frac", "can_fail"]
    rep = bounded.report(bounded.recheck(_table([0.5, 0.5]), wide))
    assert rep == ("recomputed on this machine: 2 of 2 means within tolerance of the committed study \u2713 "
                   "(1 of the 2 checks could fail; the others' tolerance spans every value the statistic can take)")
    assert "frac [0, 1]" in bounded.rule and "cannot fail" in bounded.rule and "cannot fail" not in S.rule
    # one bound is enough: a tolerance that reaches below 0 but not up to 1 can still fail
    assert bounded.recheck(_table([0.2, 0.2]), _table([0.0, 0.2, 0.1, 0.1])).set_index("statistic").loc["frac", "can_fail"]


def test_recheck_refuses_a_cell_the_study_lacks_and_a_table_without_its_columns():
    with pytest.raises(KeyError, match="regenerate"):
        S.recheck(_table([0.1, 0.2], size=4), _table([0.1, 0.2]))
    with pytest.raises(KeyError, match="frac"):
        S.recheck(_table([0.1, 0.2]).drop(columns="frac"), _table([0.1, 0.2]))


def test_save_and_load_round_trip_with_provenance(tmp_path):
    df = pd.concat([_table([0.1, 0.2, 0.3]), _table([1.0, 2.0, 3.0], arm="b")], ignore_index=True)
    out = S.save(df, {"n": 3}, seconds=1.234, path=tmp_path / "study.csv")
    back, prov = S.load(out)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert prov["setup"] == {"n": 3} and prov["seconds"] == 1.2 and "git_commit" in prov
    assert json.loads((tmp_path / "study.provenance.json").read_text())["device"].startswith("cpu")


def test_save_refuses_non_finite_values_and_a_single_seed(tmp_path):
    with pytest.raises(FloatingPointError, match="frac"):
        S.save(_table([0.1, float("nan")]), {}, path=tmp_path / "x.csv")
    with pytest.raises(ValueError, match="2 seeds"):
        S.save(_table([0.1]), {}, path=tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_load_names_the_command_when_the_study_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m nothing"):
        S.load(tmp_path / "absent.csv")


def test_a_study_keyed_by_one_column_rechecks_its_cells():
    one = Study("unit1", keys=("step",), floor={"frac": 0.01}, command="python -m nothing")
    ref = pd.DataFrame([{"step": s, "seed": i, "frac": 0.1 * i} for s in ("a", "b") for i in range(3)])
    check = one.recheck(ref[ref.seed == 1], ref)
    assert list(check["step"]) == ["a", "b"] and check["ok"].all()
    with pytest.raises(KeyError, match="no cell"):
        one.recheck(ref.assign(step="c"), ref)


def test_a_statistic_declared_the_same_in_every_cell_is_checked_once():
    once = Study("unit1", keys=("step",), floor={"frac": 0.01, "init": 0.01}, command="python -m nothing",
                 once=("init",))
    ref = pd.DataFrame([{"step": s, "seed": i, "frac": 0.1 * i, "init": 0.3 * i} for s in ("a", "b")
                        for i in range(3)])
    check = once.recheck(ref[ref.seed == 1], ref)
    assert list(check["statistic"]) == ["frac", "init", "frac"] and check["ok"].all()
    assert once.report(check).startswith("recomputed on this machine: 3 of 3 means")
    # declared once but different between the cells of a seed: refused, not silently checked once
    with pytest.raises(ValueError, match="'init'.*the committed study"):
        once.recheck(ref[ref.seed == 1], ref.assign(init=ref["init"] + (ref["step"] == "b")))
    live = ref[ref.seed == 1]
    with pytest.raises(ValueError, match="'init'.*the recomputation"):
        once.recheck(live.assign(init=live["init"] + (live["step"] == "b")), ref)


def test_measure_runs_saves_and_records_the_seconds(tmp_path, monkeypatch):
    df = _table([0.1, 0.2])
    unit = Study("unit", keys=S.keys, floor=S.floor, command=S.command)
    monkeypatch.setattr(Study, "path", lambda self: tmp_path / "study.csv")
    out_df, out = unit.measure(lambda: df, {"n": 2})
    assert out_df is df and out == tmp_path / "study.csv"
    back, prov = unit.load()
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert prov["setup"] == {"n": 2} and prov["seconds"] >= 0


def _package_studies():
    """Every module-level Study of the package (found by a text scan, then imported)."""
    import importlib

    from paper_repro.paths import REPO_ROOT
    found = {}
    for path in sorted((REPO_ROOT / "paper_repro").rglob("*.py")):
        if path.name == "study.py" or "Study(" not in path.read_text(encoding="utf-8"):
            continue
        mod = importlib.import_module(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
        for name, obj in vars(mod).items():
            if isinstance(obj, Study):
                found[f"{mod.__name__}.{name}"] = obj
    return found


@pytest.mark.parametrize("name", sorted(_package_studies()))
def test_every_committed_study_carries_clean_provenance(name):
    """What a page reads from a study was measured by committed code: its table is there, and its
    provenance names a clean commit (not "+dirty"), the libraries, the device and the date."""
    study = _package_studies()[name]
    df, prov = study.load()
    assert len(df) and df[study.seed_column].nunique() >= 2
    assert prov, f"{study.path()} has no provenance file beside it"
    commit = str(prov.get("git_commit", ""))
    assert len(commit) >= 7 and "dirty" not in commit, f"{name}: measured from {commit!r}"
    assert prov.get("versions", {}).get("torch") and prov.get("device") and prov.get("date")
