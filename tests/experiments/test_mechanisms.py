"""The mechanism pages' tables and verdicts on hand-built frames, and the probe table from records."""
import json
import math

import pandas as pd
import pytest

from paper_repro import verdict as V
from paper_repro.experiments import get_grid, grids, mechanisms as mech


def _runs(rows, profile="cpu"):
    out = []
    for i, r in enumerate(rows):
        out.append({"profile": profile, "config_hash": f"h{i}", "num_codes": 1024, "code_dim": 64,
                    "width": 0.25, "batch_size": 16, "quantizer": "nsvq", **r})
    return pd.DataFrame(out)


def test_mean_sd_text():
    assert mech.mean_sd_text([1.0, 2.0, 3.0]) == "2 ± 1 (3 seeds)"
    assert mech.mean_sd_text([0.5]) == "0.5 (1 seed)"
    assert mech.mean_sd_text([]) == "not run" and mech.mean_sd_text([float("nan")]) == "not run"
    assert mech.mean_sd_text([0.1, 0.1, 0.1]) == "0.1 ± 0 (3 seeds)"      # not the mean's rounding error


def test_arm_table_has_a_row_per_arm_and_K_and_says_not_run():
    df = _runs([{"tag": "a", "seed": s, "eval_usage": u, "psnr": 20.0} for s, u in ((0, 0.1), (1, 0.3))])
    t = mech.arm_table(df, ["a", "b"])
    assert list(t.columns) == ["tag", "K", "eval usage", "PSNR (dB)"]
    assert t.iloc[0]["eval usage"] == "0.2 ± 0.14 (2 seeds)" and t.iloc[1]["eval usage"] == "not run"


def test_codes_in_use_are_usage_times_K_with_the_ratio_of_the_means():
    rows = [{"tag": "a", "seed": s, "num_codes": k, "eval_usage": n / k}
            for s, per_k in ((0, {1024: 12, 8192: 12}), (1, {1024: 14, 8192: 16})) for k, n in per_k.items()]
    rows.append({"tag": "b", "seed": 0, "num_codes": 1024, "eval_usage": 0.5})
    t = mech.codes_in_use(pd.DataFrame(rows), ["a", "b"]).set_index("tag")
    assert list(t.columns) == ["K = 1,024", "K = 8,192", "ratio 8,192 / 1,024"]
    assert t.loc["a", "K = 1,024"] == "13 ± 1.4 (2 seeds)" and t.loc["a", "K = 8,192"] == "14 ± 2.8 (2 seeds)"
    assert t.loc["a", "ratio 8,192 / 1,024"] == pytest.approx(14 / 13, abs=0.005)
    assert t.loc["b", "K = 1,024"] == "512 (1 seed)" and t.loc["b", "K = 8,192"] == "not run"
    assert math.isnan(t.loc["b", "ratio 8,192 / 1,024"])


def test_ablation_verdicts_pair_arms_by_seed_and_count_cells():
    rows = []
    for s in (0, 1, 2):
        for k, hi in ((1024, 0.9), (8192, 0.8)):
            rows += [{"tag": "paper flavour", "seed": s, "num_codes": k, "eval_usage": hi + 0.01 * s},
                     {"tag": "released config (kernel off, modified STE)", "seed": s, "num_codes": k, "eval_usage": 0.05},
                     {"tag": "kernel, plain STE", "seed": s, "num_codes": k, "eval_usage": hi + 0.05 + 0.01 * s}]
    kernel, ste = mech.ablation_verdicts(_runs(rows))
    assert kernel.verdict == V.SUPPORTED and len(kernel.parts) == 2
    assert ste.verdict == V.CONTRADICTED                      # the plain STE is higher here
    only_1024 = _runs([r for r in rows if r["num_codes"] == 1024])
    partial = mech.ablation_verdicts(only_1024)[0]
    assert partial.verdict == V.INCONCLUSIVE and "1 of its 2 cells run" in partial.claim
    assert mech.ablation_verdicts(_runs(rows, profile="ci"))[0].verdict == V.PIPELINE


def test_replacement_borrows_the_off_arms_from_codebook_size():
    on = _runs([{"tag": f"{q} + replacement", "quantizer": q, "seed": s, "eval_usage": 0.9}
                for q in grids.REPLACEMENT_METHODS for s in (0, 1, 2)]
               + [{"tag": "vq", "quantizer": "vq", "seed": s, "eval_usage": 0.05 + 0.01 * s} for s in (0, 1, 2)])
    off = _runs([{"tag": t, "quantizer": q, "seed": s, "eval_usage": 0.1 + 0.01 * s}
                 for q, t in grids.REPLACEMENT_OFF_IN_CODEBOOK_SIZE.items() for s in (0, 1, 2)]
                + [{"tag": "NS-VQ", "quantizer": "nsvq", "seed": 0, "eval_usage": 0.5, "num_codes": 64}])
    rf = mech.replacement_frame(on, off)
    assert sorted(rf.groupby(["method", "replacement"]).size().to_dict().items()) == sorted(
        {(q, r): 3 for q in grids.REPLACEMENT_METHODS for r in ("on", "off")}.items())   # K = 64 left out
    (v,) = mech.replacement_verdicts(rf)
    assert v.verdict == V.SUPPORTED and len(v.parts) == 4 and v.side == V.OURS and v.side == V.OURS
    shorter = mech.replacement_frame(on.assign(epochs=3), off.assign(epochs=1))   # another scale: not borrowed
    assert set(shorter[shorter.replacement == "off"]["method"]) == {"vq"}


def test_causes_verdicts_judge_init_and_width():
    rows = []
    for w in (0.25, 0.5):
        for q, init in grids.CAUSE_ARMS:
            for s in (0, 1, 2):
                u = 0.1 + (0.3 if init == "kmeans" else 0) + (0.2 if w == 0.5 else 0) + 0.01 * s
                rows.append({"tag": "x", "quantizer": q, "quantizer_options.init": init, "width": w, "seed": s,
                             "eval_usage": u, "config_hash": f"{q}{init}{w}{s}"})
    df = _runs(rows).assign(config_hash=[r["config_hash"] for r in rows])
    last = pd.DataFrame({"config_hash": df["config_hash"], "latent_rank": [2.0 + (1 if w == 0.5 else 0) + 0.1 * s
                                                                           for w, s in zip(df["width"], df["seed"])]})
    init, width, rank = mech.causes_verdicts(df, last)
    assert init.verdict == V.SUPPORTED and len(init.parts) == 4
    assert width.verdict == V.SUPPORTED and len(width.parts) == 5
    assert rank.verdict == V.SUPPORTED


def test_staged_verdicts_judge_the_follow_ups_claims_and_each_stage_by_seed():
    # per arm: (eval usage, PSNR, FD, LPIPS); (b) worsens the FD, (c) improves it; SimVQ in between
    arms = {"SimVQ": (0.5, 25.0, 40.0, 0.20), "NS-VQ": (0.01, 22.0, 60.0, 0.30), "NS-VQ +a": (0.6, 23.0, 50.0, 0.25),
            "NS-VQ +a+b": (0.7, 22.5, 55.0, 0.26), "NS-VQ +a+b+c": (0.95, 25.5, 35.0, 0.10),
            "NS-VQ +a+b+c (fixed)": (0.3, 16.0, 70.0, 0.35)}
    rows = [{"tag": tag, "num_codes": k, "seed": s, "eval_usage": u + 0.01 * s, "psnr": p + 0.1 * s,
             "fd": f + s, "lpips": lp + 0.001 * s}
            for tag, (u, p, f, lp) in arms.items() for k in (1024, 8192) for s in (0, 1, 2)]
    vs = {v.claim: v for v in mech.staged_verdicts(_runs(rows))}
    assert len(vs) == 8
    full = vs["NSVQ follow-up: the staged schedule reaches near-full codebook utilisation (eval usage > 0.9)"]
    assert full.verdict == V.SUPPORTED and full.side == ""
    fd = vs["NSVQ follow-up: the staged schedule reconstructs better than SimVQ (FD, lower is better)"]
    assert fd.verdict == V.SUPPORTED and len(fd.parts) == 2          # both K, paired by seed
    lp = [v for c, v in vs.items() if "LPIPS" in v.claim]
    assert len(lp) == 1 and "stage (c) trains on LPIPS" in lp[0].claim
    a = vs["Stage (a): dead-code replacement raises NS-VQ's eval usage"]
    b = vs["Stage (b): freezing the encoder lowers the FD over the arm before it"]
    c = vs["Stage (c): adversarial refinement lowers the FD over the arm before it"]
    assert (a.verdict, b.verdict, c.verdict) == (V.SUPPORTED, V.CONTRADICTED, V.SUPPORTED)
    assert a.side == b.side == c.side == mech.OURS_SIDE
    # the adaptive GAN weight against the fixed one: FD 35 against 70, paired by seed at both K
    w = vs["Stage (c): VQGAN's adaptive GAN weight gives a lower FD than a fixed weight of 0.1"]
    assert w.verdict == V.SUPPORTED and len(w.parts) == 2 and w.side == mech.OURS_SIDE
    assert w.parts[0].mean == pytest.approx(35.0)
    # a grid without the full schedule yet: only what has both sides is judged; the other claims are
    # listed as not judged, with no cell run, instead of vanishing from the page
    part = mech.staged_verdicts(_runs([r for r in rows if r["tag"] in ("SimVQ", "NS-VQ", "NS-VQ +a")]))
    judged = [v for v in part if v.verdict != V.NOT_JUDGED]
    assert [v.claim for v in judged] == ["Stage (a): dead-code replacement raises NS-VQ's eval usage"]
    waiting = [v for v in part if v.verdict == V.NOT_JUDGED]
    assert len(waiting) == len(vs) - 1 and all(v.claim.endswith("[0 of its 2 cells run]") for v in waiting)
    assert all(v.stats() == "no runs yet" and v.n == 0 for v in waiting)
    assert {v.side for v in waiting if v.claim.startswith("Stage")} == {mech.OURS_SIDE}


def test_probe_frame_reads_the_records_probes(tmp_path):
    rec = {"config_hash": "abc", "config": {"tag": "t", "quantizer": "vq", "num_codes": 8, "code_dim": 2,
                                             "width": 0.25, "batch_size": 4, "seed": 0},
           "probes": [{"step": 0, "epoch": 0, "probe_usage": 0.5, "churn": None},
                      {"step": 10, "epoch": 0, "probe_usage": 0.75, "churn": 0.1}]}
    p = tmp_path / "abc.json"
    p.write_text(json.dumps(rec))
    pf = mech.probe_frame(pd.DataFrame({"record_path": [str(p)]}))
    assert list(pf["step"]) == [0, 10] and list(pf["images"]) == [0, 40]
    assert pf["interval"].tolist()[1] == 10 and pd.isna(pf["interval"].tolist()[0])
    assert mech.last_probe(pf)["probe_usage"].tolist() == [0.75]
    assert mech.probe_frame(pd.DataFrame({"record_path": []})).empty
    # a column some probe measured is shown; one every probe left None (a run older than the probe) is not
    assert mech.measured(pf, ["churn", "probe_usage", "churn_encoder", "relative_drift"]) == ["churn", "probe_usage"]
    assert mech.measured(pf.assign(churn=None), ["churn"]) == []


def test_refine_table_applies_the_adaptive_lambda_and_averages_the_stage_epochs(tmp_path):
    """The fixed rule applies refine_gan_weight; the adaptive one that times the logged lambda; only the
    epochs of the stage count (a record without the stage gives no row)."""
    def record(h, tag, seed, rule, epochs):
        rec = {"config_hash": h, "config": {"tag": tag, "quantizer": "nsvq", "batch_size": 16, "seed": seed,
                                            "refine_gan_weight": 0.8 if rule == "adaptive" else 0.1,
                                            "refine_gan_weighting": rule},
               "epochs": epochs}
        (tmp_path / f"{h}.json").write_text(json.dumps(rec))
        return {"config_hash": h, "tag": tag, "seed": seed, "num_codes": 1024, "record_path": str(tmp_path / f"{h}.json")}

    plain = {"epoch": 0, "train_loss": 1.0}
    stage = lambda lam, g: {"epoch": 1, "refine_adaptive_weight": lam, "refine_gan_g": g, "refine_gan_d": 0.3, "refine_lpips": 0.02}
    df = pd.DataFrame([record("a0", "adaptive arm", 0, "adaptive", [plain, stage(0.01, 0.004), stage(0.03, 0.006)]),
                       record("a1", "adaptive arm", 1, "adaptive", [plain, stage(0.02, 0.005)]),
                       record("f0", "fixed arm", 0, "fixed", [plain, {**stage(None, 0.25), "refine_adaptive_weight": None}]),
                       record("n0", "no stage", 0, "fixed", [plain])])
    t = mech.refine_table(df, ["no stage", "fixed arm", "adaptive arm"]).set_index("tag")
    assert list(t.index) == ["fixed arm", "adaptive arm"]
    assert t.loc["adaptive arm", "GAN weight applied"] == "0.016 ± 0 (2 seeds)"      # 0.8 x mean(0.01, 0.03); 0.8 x 0.02
    assert t.loc["fixed arm", "GAN weight applied"] == "0.1 (1 seed)"
    assert t.loc["adaptive arm", "weighted GAN term (G)"] == "0.005 ± 0 (2 seeds)"
    assert mech.refine_table(df[df.tag == "no stage"], ["no stage"]).empty


def test_onset_is_the_first_probe_at_the_level_and_never_when_missed():
    def run(h, tag, seed, usages):
        return [{"config_hash": h, "tag": tag, "seed": seed, "step": 100 * i, "probe_usage": u}
                for i, u in enumerate(usages)]
    # unsorted steps and a dip after the crossing: the first crossing counts
    pf = pd.DataFrame(run("a0", "a", 0, [0.0, 0.05, 0.2, 0.05, 0.6])[::-1] + run("a1", "a", 1, [0.0, 0.1, 0.3, 0.3, 0.3])
                      + run("b0", "b", 0, [0.0, 0.01, 0.02, 0.03, 0.04]))
    o = mech.onset_steps(pf, level=0.1).set_index("config_hash")
    assert o.loc["a0", "onset"] == 200 and o.loc["a1", "onset"] == 100     # >= level, not > level
    assert pd.isna(o.loc["b0", "onset"]) and o.loc["b0", "last_step"] == 400
    t = mech.onset_table(pf, ["a", "b", "c"], levels=(0.1, 0.5)).set_index("tag")
    assert t.loc["a"].tolist() == ["150 ± 71 (2 seeds)", "2 of 2", "400 (1 seed)", "1 of 2"]
    assert t.loc["b"].tolist() == ["never", "0 of 1", "never", "0 of 1"]
    assert t.loc["c"].tolist() == ["not run", "0 of 0", "not run", "0 of 0"]
    # every seed already there at the first probe after step 0: a bound, not a measured step
    early = pd.DataFrame(run("d0", "d", 0, [0.0, 0.5, 0.6]) + run("d1", "d", 1, [0.0, 0.4, 0.7]))
    assert mech.onset_table(early, ["d"], levels=(0.1,)).iloc[0, 1] == "<= 100 (first probe)"


def test_probe_course_takes_each_runs_probe_nearest_the_fraction_of_training():
    pf = pd.DataFrame([{"config_hash": h, "tag": "a", "step": st, "code_rank": v}
                       for h, vals in (("r0", (40.0, 20.0, 10.0, 4.0, 2.0)), ("r1", (44.0, 30.0, 6.0, 3.0, 2.0)))
                       for st, v in zip((0, 100, 200, 300, 400), vals)]
                      + [{"config_hash": "r2", "tag": "b", "step": st, "code_rank": v}     # a shorter run
                         for st, v in ((0, 9.0), (50, 5.0), (100, 1.0))])
    t = mech.probe_course(pf, "code_rank", ["a", "b", "c"], fractions=(0.0, 0.5, 1.0)).set_index("tag")
    assert t.loc["a"].tolist() == ["42 ± 2.8 (2 seeds)", "8 ± 2.8 (2 seeds)", "2 ± 0 (2 seeds)"]
    assert t.loc["b"].tolist() == ["9 (1 seed)", "5 (1 seed)", "1 (1 seed)"]     # its own half-way step
    assert t.loc["c"].tolist() == ["not run"] * 3
    # first_probe: each run's first probe after step 0, next to the start; its label names the steps
    t = mech.probe_course(pf, "code_rank", ["a", "b", "c"], fractions=(0.0, 1.0), first_probe=True)
    assert t.columns.tolist() == ["tag", "start", "first probe (step 50 to 100)", "end"]
    assert t.set_index("tag").iloc[:, 1].tolist() == ["25 ± 7.1 (2 seeds)", "5 (1 seed)", "not run"]
    one = mech.probe_course(pf, "code_rank", ["a"], fractions=(0.0,), first_probe=True)
    assert one.columns.tolist() == ["tag", "start", "first probe (step 100)"]
    with pytest.raises(ValueError, match="fractions must include 0.0"):
        mech.probe_course(pf, "code_rank", ["a"], fractions=(1.0,), first_probe=True)


def test_transvq_init_pull_measures_the_maps_and_the_embedding_weakens_the_coupling():
    pull = mech.transvq_init_pull(seeds=(0, 1), steps=3)        # the page's K = 1024, D = 64
    assert len(pull) == 4 and set(pull["map"]) == set(mech.TRANSVQ_INIT_MAPS)
    paper, authors = (pull[pull["map"] == m].set_index("seed") for m in mech.TRANSVQ_INIT_MAPS)
    # the same base codes and input projection (one seed) in both maps; the embedding is N(0, 1)
    assert (paper.input_rms_base == authors.input_rms_base).all() and paper.input_rms_embedding.isna().all()
    assert authors.input_rms_embedding.between(0.9, 1.1).all()
    assert (paper.token_rms == paper.input_rms_base).all()
    # the paper's tokens lie in the D = 64 dimensional image of the input projection; the embedding's fill m = 256
    assert (paper.token_dims <= 64).all() and (authors.token_dims > 150).all()
    assert (pull.codes_selected >= 1).all() and (pull.codes_selected < 1024).all()
    assert (pull.coupling == pull.move_unselected / pull.move_selected).all() and (pull.move_unselected > 0).all()
    # a step of the paper's map reaches the codes no latent selected more than one of the authors' map
    assert (paper.coupling > authors.coupling).all()
    t = mech.transvq_init_table(pull)
    assert list(t.columns) == list(mech.TRANSVQ_INIT_MAPS) and t.loc["  of which position embedding: RMS"].iloc[0] == "-"


def test_mechanism_grids_hold_what_their_pages_compare():
    abl = get_grid("nsvq_ablation", "cpu")
    assert {c.tag for c in abl} == set(grids.NSVQ_ARMS) and {c.num_codes for c in abl} == {1024, 8192}
    assert all(c.probe_every == 375 for c in abl)
    steps = get_grid("batch_steps", "cpu")
    assert {c.max_steps for c in steps} == {grids.fixed_steps("cpu")} == {11250}
    # the sampler drops each epoch's last partial batch: a run takes min(cap, epochs x full batches)
    # steps, which reaches the cap except at batch 64 (12 epochs x 937 = 11,244; the page's caption says so)
    took = {c.batch_size: min(c.max_steps, c.epochs * (60000 // c.batch_size)) for c in steps}
    assert took == {4: 11250, 16: 11250, 64: 11244}
    tv = get_grid("transvq_diagnosis", "cpu")
    assert all("position_embedding" in c.quantizer_options for c in tv if c.quantizer == "transvq"
               and c.quantizer_options.get("mapper") != "mlp")
    # the replacement grid does not retrain codebook_size's off arms
    cs = {c.replace(tag=None).to_json() for c in get_grid("codebook_size", "cpu")}
    assert not any(c.replace(tag=None, experiment="codebook_size").to_json() in cs for c in get_grid("replacement", "cpu"))


def test_transvq_verdicts_judge_the_paper_claim_and_the_audits_prediction():
    """The paper's claim at this cell is Table 3's usage of 1.00 (judged against the full-usage bound);
    TransVQ against SimVQ and the audit's prediction are ours, and say so."""
    from paper_repro.experiments.codebook_size import FULL_USAGE
    rows = []
    for s in (0, 1, 2):
        rows += [{"tag": "TransVQ (paper)", "quantizer": "transvq", "seed": s, "eval_usage": 0.003},
                 {"tag": "TransVQ, codebook x 1/8 (ours)", "quantizer": "transvq", "seed": s, "eval_usage": 0.4 + 0.02 * s},
                 {"tag": "SimVQ", "quantizer": "simvq", "seed": s, "eval_usage": 0.5 + 0.01 * s}]
    paper, vs_simvq, code, audit = mech.transvq_verdicts(_runs(rows))
    assert code.verdict == V.NOT_JUDGED and code.claim.endswith("[0 of its 1 cell run]")   # no authors' map yet
    assert paper.claim.startswith("Table 3: TransVQ") and paper.side == "" and paper.verdict == V.CONTRADICTED
    assert vs_simvq.verdict == V.CONTRADICTED and vs_simvq.side == mech.OURS_SIDE
    assert audit.verdict == V.SUPPORTED and audit.claim.startswith("Audit (ours)") and audit.side == mech.OURS_SIDE
    rows += [{"tag": "TransVQ + position embedding (authors' code)", "quantizer": "transvq", "seed": s,
              "eval_usage": 0.003 + 0.001 * s} for s in (0, 1, 2)]
    paper, vs_simvq, code, audit = mech.transvq_verdicts(_runs(rows))
    assert code.claim.startswith("Paper vs code") and code.verdict == V.INCONCLUSIVE   # 0.003 vs 0.003-0.005
    assert code.side == mech.PAPER_VS_CODE_SIDE
    # the bound decides the paper's claim: just above it supported, just below it (by seeds) contradicted
    for u, want in ((FULL_USAGE + 0.02, V.SUPPORTED), (FULL_USAGE - 0.02, V.CONTRADICTED)):
        rows = [dict(r, eval_usage=u + 0.001 * r["seed"]) if r["tag"] == "TransVQ (paper)" else r for r in rows]
        paper, vs_simvq = mech.transvq_verdicts(_runs(rows))[:2]
        assert paper.verdict == want and vs_simvq.verdict == V.SUPPORTED


def test_probe_plot_draws_a_line_per_arm_with_its_mean_over_seeds():
    import matplotlib
    matplotlib.use("agg")
    pf = pd.DataFrame([{"tag": t, "num_codes": 64, "seed": s, "step": st, "probe_usage": u + 0.1 * s}
                       for t, u in (("a", 0.2), ("b", 0.5)) for s in (0, 1) for st in (0, 10, 20)])
    fig = mech.plot_probes(pf, ["probe_usage", "latent_rank"], order=["a", "b"], facet=None)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"a", "b"}
    assert list(lines["b"].get_ydata()) == pytest.approx([0.55, 0.55, 0.55])     # mean of seeds 0.5, 0.6
    assert len(ax.collections) == 2                                               # a ±1 sd band per arm
    assert not fig.axes[1].get_lines()                                            # no column: an empty panel


def test_probe_plot_sharey_gives_each_metrics_facets_one_y_range():
    import matplotlib
    matplotlib.use("agg")
    pf = pd.DataFrame([{"tag": "a", "width": w, "seed": 0, "step": st, "probe_usage": u * (st + 1)}
                       for w, u in ((0.25, 0.3), (0.5, 0.01)) for st in (0, 1, 2)])
    apart = mech.plot_probes(pf, ["probe_usage"], facet="width")
    assert apart.axes[0].get_ylim() != apart.axes[1].get_ylim()                  # each panel its own range
    shared = mech.plot_probes(pf, ["probe_usage"], facet="width", sharey=True)
    lo, hi = shared.axes[0].get_ylim()
    assert shared.axes[1].get_ylim() == (lo, hi) and lo <= 0.01 and hi >= 0.9     # the union of both


def test_drift_is_drawn_only_over_regular_probe_intervals():
    """A probe at an epoch's end one step before a periodic one measures one-step churn (far larger than
    the per-step average over a full interval): the drift panel leaves it out, the usage panel keeps it."""
    import matplotlib
    matplotlib.use("agg")
    steps = [0, 100, 200, 299, 300, 400]          # epoch end at 299, periodic probes every 100
    probes = [{"step": st, "epoch": 0, "probe_usage": 0.5,
               "churn_per_step": None if i == 0 else (0.07 if st == 300 else 0.001)} for i, st in enumerate(steps)]
    pf = pd.DataFrame([{"tag": "a", "num_codes": 64, "seed": 0, "probe_every": 100, "interval": None if i == 0 else st - steps[i - 1],
                        **p} for i, (st, p) in enumerate(zip(steps, probes))])
    assert mech.regular_drift(pf).tolist() == [False, True, True, True, False, True]
    fig = mech.plot_probes(pf, ["probe_usage", "churn_per_step"], facet=None)
    usage, churn = (ax.get_lines()[0] for ax in fig.axes[:2])
    assert list(usage.get_xdata()) == steps
    assert list(churn.get_xdata()) == [100, 200, 299, 400] and max(churn.get_ydata()) == pytest.approx(0.001)
    # a frame without intervals (hand-built, older callers): everything is drawn
    assert mech.regular_drift(pf.drop(columns=["interval"])).all()
    # the churn table by interval: per interval, probes, mean churn, and that per step
    t = mech.churn_by_interval(pf.assign(churn=pf["churn_per_step"] * pf["interval"]))
    assert t["steps between probes"].tolist() == ["1", "64-127"] and t["probes"].tolist() == [1, 4]
    assert t["churn per step"].tolist() == pytest.approx([0.07, 0.001])
    assert t["churn"].tolist() == pytest.approx([0.07, (0.1 * 3 + 0.099) / 4])
    assert mech.churn_by_interval(pf.iloc[:1]).empty


def test_the_staged_schedule_needs_two_epochs_and_freezes_before_it_refines():
    with pytest.raises(ValueError, match="at least 2 epochs"):
        grids._staged_arms(1)
    for epochs, freeze in ((2, 1), (3, 1), (10, 8)):
        arms = grids._staged_arms(epochs)
        assert arms["NS-VQ +a+b"][2] == {"freeze_encoder_at_epoch": freeze}
        stages = {"freeze_encoder_at_epoch": freeze, "refine_from_epoch": epochs - 1}
        assert arms["NS-VQ +a+b+c"][2] == {**stages, "refine_gan_weight": 0.8, "refine_gan_weighting": "adaptive"}
        assert arms["NS-VQ +a+b+c (fixed)"][2] == {**stages, "refine_gan_weight": 0.1, "refine_gan_weighting": "fixed"}


def test_start_kept_averages_step_0_and_each_runs_first_later_probe_over_the_matching_runs():
    def run(h, tag, probes):
        return [{"config_hash": h, "tag": tag, "step": st, "probe_usage": u} for st, u in probes]
    pf = pd.DataFrame(run("k0", "vq kmeans init w0.25", [(0, 0.9), (100, 0.1), (200, 0.5)])
                      + run("k1", "nsvq kmeans init w0.5", [(0, 1.0), (150, 0.3)])
                      + run("k2", "vq kmeans init w0.5", [(100, 0.2)])           # no step-0 probe: left out
                      + run("u0", "vq uniform init w0.25", [(0, 0.0), (100, 0.0)]))
    kept = mech.start_kept(pf)
    assert kept["runs"] == 2 and kept["steps"] == (100, 150)
    assert kept["start"] == pytest.approx(0.95) and kept["first"] == pytest.approx(0.2)
    assert mech.start_kept(pf, tag_contains="nothing") is None
    assert mech.start_kept(pf.iloc[0:0]) is None
