"""The verdicts-at-a-glance table: built from committed data only, one rule, every row linked."""
import re

import pytest

from paper_repro import verdict as V
from paper_repro.experiments import verdicts as vv
from paper_repro.paths import REPO_ROOT


def test_claim_rows_come_from_each_committed_page_with_verdicts_of_the_one_rule(monkeypatch):
    monkeypatch.setattr("paper_repro.experiments.runner.run_grid",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("must not train")))
    rows = vv.claim_rows()
    from paper_repro.experiments.mechanisms import MECHANISM_PAGES
    from paper_repro.experiments.runner import grid_results
    with_runs = {p for p in (*MECHANISM_PAGES, "table6") if any(len(grid_results(p, prof)[0]) for prof in ("ci", "cpu"))}
    from paper_repro.experiments.runner import load_grid
    first = set(load_grid("first_run")[0]["quantizer"])
    base = {"codebook_size", "batch_size", *vv.STUDY_PAGES} | ({"first_training_run"} if {"vq", "nsvq"} <= first else set())
    assert base <= set(rows["page"]) <= base | with_runs   # a mechanism page judges once both sides have runs
    assert set(rows["verdict"]) <= set(V.VERDICTS)
    if "transvq_diagnosis" in with_runs:      # a claim's own side overrides its page's paper side
        from paper_repro.experiments.mechanisms import OURS_SIDE
        audit = rows[rows["claim"].str.startswith("Audit (ours)")]
        assert len(audit) and (audit["paper"] == OURS_SIDE).all()
    assert sum(vv.counts(rows).values()) == len(rows)
    for page in set(rows["page"]) | set(vv.COMPUTED_PAGES):
        assert (REPO_ROOT / "notebooks" / f"{page}.ipynb").exists(), page
    html = vv.html_table(rows)
    assert html.count('<a class="verdict-page" href=') == len(rows) and "codebook_size.html" in html
    grouped = vv.grouped_html(rows)        # the introduction's: every claim once, in its part of the book
    assert grouped.count('<a class="verdict-page" href=') == len(rows)
    assert grouped.count("<details") == grouped.count("<summary>") >= 1
    summaries = re.findall(r"<summary><b>(.*?)</b>: (\d+) claims?", grouped)
    assert sum(int(n) for _, n in summaries) == len(rows)
    for block in grouped.split("<details")[1:]:     # within a part: judged claims first
        marks = re.findall(r"<td>(\S+) (?:supported|contradicted|inconclusive|not judged|pipeline check)</td>", block)
        waiting = [m == V.MARKS[V.NOT_JUDGED] for m in marks]
        assert waiting == sorted(waiting), "a judged claim follows one not judged"
    if "codebook_size" in set(rows["page"]):       # the paper's Tables 2-4 start open, the rest closed
        block = grouped[:grouped.index("codebook_size.html")]
        assert block[block.rindex("<details"):].startswith('<details class="verdict-group" open>')


def test_pages_reading_a_grid_include_every_page_that_loads_its_records(monkeypatch):
    """ALSO_READS is kept true: a spy on the store records which grids each mechanism page's
    verdicts load, and every one is the page's own grid or listed there."""
    from paper_repro.experiments import mechanisms, store
    read = []
    real = store.results_dir
    monkeypatch.setattr(store, "results_dir", lambda exp, prof, root=None: read.append(exp) or real(exp, prof, root))
    own = {page: grid for page, _, grid in vv.PAGE_MAP if grid}
    seen = {}
    for name in mechanisms.MECHANISM_PAGES:
        read.clear()
        try:
            mechanisms.page_verdicts(name)
        except FileNotFoundError:
            continue
        page = f"notebooks/{name}"
        seen[page] = set(read)
        assert set(read) <= {own[page], *vv.ALSO_READS.get(page, ())}, (page, set(read))
        for grid in set(read):
            assert page in vv.pages_reading({grid})
    assert seen["notebooks/replacement"] == {"replacement", "codebook_size"}     # the spy sees the helper's read
    assert vv.pages_reading({"codebook_size"}) == ["notebooks/codebook_size", "notebooks/replacement",
                                                  "notebooks/verdicts"]
    assert all(vv.pages_reading({p}) == [] for p in vv.STUDY_PAGES)
    assert not set(vv.STUDY_PAGES) & set(vv.COMPUTED_PAGES)    # a study page is judged from its study


@pytest.mark.parametrize("keep", ["one method", "one seed", "one run"])
def test_the_verdict_table_survives_partial_grids(monkeypatch, keep):
    """A background sweep commits a grid run by run, so any page may see a grid with one method,
    one seed or one run at its highest profile: the verdict table and the page map must still build
    (a claim missing a side is left out, not an error)."""
    from paper_repro.experiments import runner
    real = runner.load_grid

    def partial(name, profile="auto", root=None):
        df, src = real(name, profile, root)
        if keep == "one method":
            df = df[df["quantizer"] == sorted(df["quantizer"])[0]]
        elif keep == "one seed":
            df = df[df["seed"] == df["seed"].min()]
        else:
            df = df.iloc[:1]
        return df.reset_index(drop=True), src
    monkeypatch.setattr(runner, "load_grid", partial)
    monkeypatch.setattr(vv, "load_grid", partial)
    rows = vv.claim_rows()
    assert set(rows["verdict"]) <= set(V.VERDICTS)
    assert len(vv.page_map(rows)) == len(vv.PAGE_MAP)
    assert "<ul" in vv.mechanism_summary(rows)


def test_the_performance_status_names_the_machines_of_the_committed_tables(monkeypatch):
    import pandas as pd
    from paper_repro.experiments import benchmarks
    for devices, want in ((["cpu: X (2 threads)"], "CPU only, GPU not yet measured"),
                          (["cpu: X (2 threads)", "cuda: NVIDIA H200"], "CPU and GPU"),
                          (["cuda: NVIDIA H200"], "GPU only")):
        monkeypatch.setattr(benchmarks, "load_benchmarks", lambda d=devices: pd.DataFrame({"device_name": d}))
        assert vv._performance_status() == f"benchmark tables committed for {len(devices)} machine(s): {want}"

    def none():
        raise FileNotFoundError("no benchmark tables")
    monkeypatch.setattr(benchmarks, "load_benchmarks", none)
    assert vv._performance_status() == "no benchmark table committed yet"


def test_the_finding_points_to_the_verdict_table_only_for_claims_that_are_in_it():
    vs = [V.judge("a", [0.5, 0.6], ">", 0.1), V.judge("b", [0.5, 0.6], "<", 0.1)]
    on_table = vv.finding(None, verdicts=vs)
    assert on_table.startswith("2 claims on this page: ✓ 1 supported, ✗ 1 contradicted.")
    assert on_table.endswith("all of them: *Verdicts at a glance*.")
    pilot = vv.finding("pilot", verdicts=vs)
    assert "leaves them out" in pilot and "all of them" not in pilot
    # and the verdict table indeed holds no pilot row
    assert "pilot" not in set(vv.claim_rows()["page"])


def test_claims_that_are_the_books_own_are_not_filed_under_the_paper():
    """Controls, set-up checks and hypotheses of the book carry V.OURS in the paper column; batch-size
    usage claims cite Sec. 3.2.2's argument, not Figure 4 (which plots rFID only)."""
    rows = vv.claim_rows()
    ours = rows[rows["paper"] == V.OURS]["claim"].tolist()
    for part in ("control: free codes reach", "expansion: EMA already keeps every code",
                 "magnitudes ~0 here", "the linearisation has broken down"):
        assert any(part in c for c in ours), part
    usage = rows[rows["claim"].str.startswith("Sec. 3.2.2: the final eval usage rises")]
    assert len(usage) and (usage["paper"] == "Sec. 3.2.2 (argument, no numbers)").all()
    first = rows[rows["page"] == "first_training_run"]
    assert (first["paper"] != "").all()
