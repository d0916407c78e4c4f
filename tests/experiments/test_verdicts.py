"""The verdicts-at-a-glance table: built from committed data only, one rule, every row linked."""
from paper_repro import verdict as V
from paper_repro.experiments import verdicts as vv
from paper_repro.paths import REPO_ROOT


def test_claim_rows_come_from_each_committed_page_with_verdicts_of_the_one_rule(monkeypatch):
    monkeypatch.setattr("paper_repro.experiments.runner.run_grid",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("must not train")))
    rows = vv.claim_rows()
    from paper_repro.experiments.mechanisms import MECHANISM_PAGES
    from paper_repro.experiments.runner import grid_results
    with_runs = {p for p in MECHANISM_PAGES if any(len(grid_results(p, prof)[0]) for prof in ("ci", "cpu"))}
    base = {"first_training_run", "codebook_size", "batch_size", "kmeans_reach"}
    assert base <= set(rows["page"]) <= base | with_runs   # a mechanism page judges once both sides have runs
    assert set(rows["verdict"]) <= set(V.VERDICTS)
    assert sum(vv.counts(rows).values()) == len(rows)
    for page in set(rows["page"]) | set(vv.COMPUTED_PAGES):
        assert (REPO_ROOT / "notebooks" / f"{page}.ipynb").exists(), page
    html = vv.html_table(rows)
    assert html.count("<a href=") == len(rows) and "codebook_size.html" in html
