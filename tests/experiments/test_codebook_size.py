"""Tables 2-3 grid and its analysis: grid contents, the paper's numbers reshaped, claims evaluated
on known numbers (the paper's own, and made-up runs where a claim must fail)."""
import pandas as pd
import pytest

from paper_repro.experiments import codebook_size as cs
from paper_repro.experiments import get_grid
from paper_repro.experiments.grids import PAPER_METHODS
from paper_repro.experiments.paper_tables import load_paper_tables


def test_grid_covers_the_papers_cells():
    gpu = get_grid("codebook_size", "gpu")
    assert len(gpu) == 6 * 2 * 3 * 3
    cells = {(c.tag, c.code_dim, c.num_codes) for c in gpu}
    assert cells == {(m, d, k) for m in PAPER_METHODS for d in (3, 64) for k in (64, 1024, 8192)}
    for c in gpu:
        q, opts = PAPER_METHODS[c.tag]
        assert c.quantizer == q
        if q == "fc":
            assert c.quantizer_options == {"lookup_dim": c.code_dim}
        else:
            assert c.quantizer_options == opts
    ci = get_grid("codebook_size", "ci")
    assert {c.num_codes for c in ci} == {64, 1024} and {c.epochs for c in ci} == {1}


def test_paper_long_reads_8912_as_8192_and_keeps_every_cell():
    p = cs.paper_long(load_paper_tables())
    assert len(p) == 36 and set(p.K) == {64, 1024, 8192} and set(p.D) == {3, 64}
    row = p[(p.method == "VQGAN-FC") & (p.D == 64) & (p.K == 1024)].iloc[0]
    assert row.usage == pytest.approx(0.03) and row.rfid == pytest.approx(25.77)


def _runs(usage_of, seeds=(0, 1, 2), profile="gpu", ks=None):
    """Run rows as grid_results gives them: tag, code_dim, num_codes, seed, eval_usage, profile;
    every K of the profile's grid unless ``ks`` names fewer (a partial grid)."""
    from paper_repro.experiments.grids import CODEBOOK_SIZES
    ks = CODEBOOK_SIZES[profile] if ks is None else ks
    return pd.DataFrame([dict(tag=m, code_dim=d, num_codes=k, seed=s, eval_usage=usage_of(m, d, k, s),
                              profile=profile)
                         for m in PAPER_METHODS for d in (3, 64) for k in ks for s in seeds])


def _paper_as_runs(p, noise=0.0):
    return _runs(lambda m, d, k, s: float(p[(p.method == m) & (p.D == d) & (p.K == k)].usage.iloc[0])
                 + noise * (s - 1))


def test_claims_hold_on_the_papers_numbers_as_printed_and_as_three_seeds():
    p = cs.paper_long(load_paper_tables())
    t = cs.claim_table(_paper_as_runs(p), p)
    assert list(t["paper, as printed"]) == ["holds"] * len(cs.CLAIMS)
    assert list(t["ours"]) == ["supported"] * len(cs.CLAIMS)     # same numbers on every seed
    assert set(t["ours (seeds)"]) == {3}


def test_claims_fail_where_the_numbers_say_so_and_use_only_shared_cells():
    p = cs.paper_long(load_paper_tables())
    # everything at full usage: no collapse, so the two "lower at the largest K" claims are contradicted
    t = cs.claim_table(_runs(lambda m, d, k, s: 1.0), p).set_index("claim")["ours"]
    assert t[cs.CLAIMS[0].text] == "supported"
    assert t[cs.CLAIMS[3].text] == "contradicted" and t[cs.CLAIMS[4].text] == "contradicted"
    # NS-VQ collapses at one cell: claims 1 and 2 are contradicted
    t = cs.claim_table(_runs(lambda m, d, k, s: 0.3 if (m, d, k) == ("NS-VQ", 64, 1024) else 0.9), p)
    t = t.set_index("claim")["ours"]
    assert t[cs.CLAIMS[0].text] == "contradicted" and t[cs.CLAIMS[1].text] == "contradicted"
    # seed noise as large as the effect: inconclusive, not a verdict either way
    noisy = _runs(lambda m, d, k, s: {0: 0.93, 1: 0.99, 2: 0.96}[s])
    assert cs.claim_table(noisy, p).set_index("claim")["ours"][cs.CLAIMS[0].text] == "inconclusive"
    # one seed: not judged; ci: a pipeline check
    one = cs.claim_table(_runs(lambda m, d, k, s: 1.0, seeds=(0,)), p)
    assert set(one["ours"]) == {"not judged"}
    ci = cs.claim_table(_runs(lambda m, d, k, s: 1.0, profile="ci"), p)
    assert set(ci["ours"]) == {"pipeline check"}
    # the paper's verdict is taken over the same cells (K = 64, 1024 only): VQVAE2 D=64 0.82 -> 0.57
    t = cs.claim_table(_runs(lambda m, d, k, s: 1.0, ks=(64, 1024)), p).set_index("claim")
    assert t.loc[cs.CLAIMS[4].text, "paper, as printed"] == "holds"
    # a partial grid (K = 8192 not run yet) supports no "every K and D" claim, but says how much it saw
    assert t.loc[cs.CLAIMS[0].text, "ours"] == "inconclusive" and t.loc[cs.CLAIMS[0].text, "cells judged"] == "8 of 12"
    assert t.loc[cs.CLAIMS[3].text, "ours"] == "contradicted"      # a contradiction needs no full grid
    # no VQVAE2 run yet: its claims are "not run yet" on our side, the paper judged on all its cells
    no_vqvae2 = _runs(lambda m, d, k, s: 1.0)
    t = cs.claim_table(no_vqvae2[no_vqvae2.tag != "VQVAE2"], p).set_index("claim")
    assert t.loc[cs.CLAIMS[4].text, "ours"] == "not run yet" and t.loc[cs.CLAIMS[4].text, "cells judged"] == "0 of 1"
    assert t.loc[cs.CLAIMS[4].text, "paper, as printed"] == "holds (all its cells)"
    assert t.loc[cs.CLAIMS[1].text, "paper, as printed"] == "holds (all its cells)"


def _ours(usage_of):
    return pd.DataFrame([dict(method=m, D=d, K=k, usage=usage_of(m, d, k))
                         for m in PAPER_METHODS for d in (3, 64) for k in (64, 1024)])


def test_usage_table_layout_and_missing_tags():
    p = cs.paper_long(load_paper_tables())
    ours = _ours(lambda m, d, k: 0.5)
    t = cs.usage_table(ours, p, 64)
    assert list(t.index) == list(PAPER_METHODS)
    assert t[("K = 1,024", "ours")].eq(0.5).all()
    assert t.loc["VQGAN-FC", ("K = 8,192", "paper")] == pytest.approx(0.0)
    assert t[("K = 8,192", "ours")].isna().all()
    with pytest.raises(ValueError, match="paper method name"):
        cs.ours_long(pd.DataFrame({"tag": [None], "eval_usage": [1.0]}))


def test_fd_table_orders_its_columns_by_code_dimension_then_codebook_size():
    # rows in the order records arrive (a partial grid: D = 3's large K run last)
    cells = [(3, 64), (64, 64), (64, 1024), (3, 1024)]
    ours = pd.DataFrame([dict(method=m, D=d, K=k, fd=float(d + k), fd_metric="FD-VGG16")
                         for d, k in cells for m in PAPER_METHODS])
    t = cs.fd_table(ours)
    assert list(t.columns) == ["D=3, K=64", "D=3, K=1,024", "D=64, K=64", "D=64, K=1,024"]
    assert t.loc["SimVQ", "D=3, K=1,024"] == 1027.0 and list(t.index) == list(PAPER_METHODS)


def test_best_configs_pick_the_lowest_mean_distance_per_method():
    rows = []
    for m in PAPER_METHODS:
        for k in (64, 1024):
            for seed in (0, 1):
                # method-specific optimum: NS-VQ best at K=64 on average although one seed says otherwise
                fd = {64: 10.0, 1024: 20.0}[k] if m == "NS-VQ" else {64: 30.0, 1024: 25.0}[k]
                fd += (-12.0 if (m, k, seed) == ("NS-VQ", 1024, 0) else 0.0)
                rows.append(dict(tag=m, num_codes=k, code_dim=64, seed=seed, fd=fd, ssim=0.5,
                                 lpips=0.1, eval_usage=0.5, fd_metric="FD-VGG16"))
    best = cs.best_configs(pd.DataFrame(rows))
    assert list(best.index) == list(PAPER_METHODS)
    assert best.loc["NS-VQ", "K"] == 64 and best.loc["NS-VQ", "FD-VGG16"] == pytest.approx(10.0)
    assert (best.drop(index="NS-VQ")["K"] == 1024).all()
    assert (best["cells"] == 2).all()                  # the choice was among each method's 2 cells run
    fewer = [r for r in rows if not (r["tag"] == "SimVQ" and r["num_codes"] == 1024)]
    assert cs.best_configs(pd.DataFrame(fewer)).loc["SimVQ", "cells"] == 1
    runs = cs.best_runs(pd.DataFrame(rows))
    assert len(runs) == 12 and set(runs[runs.tag == "NS-VQ"].num_codes) == {64}
    p4 = cs.paper_table4(load_paper_tables())
    assert p4.loc["TransVQ", "rFID"] == pytest.approx(13.70) and list(p4.index) == list(PAPER_METHODS)


def test_usage_over_training_reads_the_traces_and_draws_one_panel_per_cell(tmp_path):
    """trace_frame is the records' traces row for row; the figure has one titled panel per (D, K)
    cell with runs, in table order, a line per method at the mean over seeds."""
    import json

    import matplotlib
    matplotlib.use("agg")
    rows = []
    for k, d in ((1024, 64), (64, 3), (64, 64)):
        for seed in (0, 1):
            h = f"{k:05d}{d:02d}{seed}"
            trace = [{"step": st, "window_steps": st // 2 or 1, "window_usage": 0.1 * seed + st / 100,
                      "loss": 1.0, "recon_loss": 0.5, "quantizer_loss": 0.5} for st in (1, 10, 100)]
            rec = {"config_hash": h, "config": {"quantizer": "nsvq", "num_codes": k, "code_dim": d,
                                                 "batch_size": 16, "seed": seed, "tag": "NS-VQ"}, "trace": trace}
            (tmp_path / f"{h}.json").write_text(json.dumps(rec))
            rows.append({"config_hash": h, "tag": "NS-VQ", "record_path": str(tmp_path / f"{h}.json")})
    df = pd.DataFrame(rows)
    tf, cells = cs.usage_over_training(df)
    assert len(tf) == 3 * 2 * 3 and cells == ["D = 3, K = 64", "D = 64, K = 64", "D = 64, K = 1,024"]
    one = tf[(tf.config_hash == "01024641") & (tf.step == 10)]
    assert one["window_usage"].item() == pytest.approx(0.2) and one["window_steps"].item() == 5
    fig = cs.plot_usage_over_training(df)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == cells and all(ax.get_xscale() == "log" for ax in titled)
    (line,) = titled[0].get_lines()
    assert list(line.get_ydata()) == pytest.approx([0.06, 0.15, 1.05])       # mean of seeds 0 and 1
