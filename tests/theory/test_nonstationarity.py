"""Sec. 3.2 measurement: sanity of the set-up (k-means start, zero step = zero drift)."""
import pytest
import torch

from paper_repro.theory import nonstationarity as ns
from paper_repro.theory._common import flat_latents, lloyd_torch, load_images


@pytest.fixture(scope="module")
def images():
    return load_images(24, 32, seed=0)


def test_lloyd_torch_is_a_kmeans_fixed_point():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g, dtype=torch.float64)
    c = lloyd_torch(x, 7, iters=200)
    idx = torch.cdist(x, c).argmin(1)
    for k in range(7):
        torch.testing.assert_close(c[k], x[idx == k].mean(0))


def test_initial_codebook_is_kmeans_of_the_latents(images):
    enc_sd, _, cb, z0 = ns.initial_state(images, 0, num_codes=8, code_dim=4, width=0.125, pretrain_steps=2)
    idx = ns._assign(z0, cb)                      # the same search as lloyd_torch
    for k in idx.unique():
        torch.testing.assert_close(cb[k], z0[idx == k].mean(0), rtol=1e-4, atol=1e-6)


def test_zero_learning_rate_moves_nothing(images):
    r = ns.drift_experiment(4, seed=0, images=images, num_codes=8, code_dim=4, width=0.125,
                            optimizer="sgd", lr=0.0, pretrain_steps=2)
    assert r.moved_other == 0.0 and r.moved_other_encoder == 0.0 and r.codes_emptied == 0 and r.rel_drift == 0.0
    assert 1 <= r.codes_hit <= 8


def test_a_real_step_moves_latents_and_is_deterministic(images):
    kw = dict(seed=1, images=images, num_codes=8, code_dim=4, width=0.125, pretrain_steps=2)
    a = ns.drift_experiment(4, **kw)
    b = ns.drift_experiment(4, **kw)
    assert a == b
    assert a.rel_drift > 0 and 0.0 <= a.moved_other_encoder <= 1.0


def test_bad_arguments(images):
    with pytest.raises(ValueError, match="held-out"):
        ns.drift_experiment(24, images=images, pretrain_steps=0, width=0.125, code_dim=4, num_codes=8)
    with pytest.raises(ValueError, match="optimizer"):
        ns.drift_experiment(2, images=images, optimizer="rmsprop")


# -- the committed study (the recheck rule itself: tests/test_study.py) ------------------------------
def test_the_committed_study_is_complete_and_rechecks_against_itself():
    study, prov = ns.load()
    assert prov["setup"]["seeds"] == sorted(study["seed"].unique().tolist())
    assert study["seed"].nunique() >= 10                      # the verdicts' seeds (the recheck uses 3)
    for name, settings, _ in ns.DESIGNS:
        part = study[study.design == name]
        assert set(part.setting) == {lbl for lbl, _ in settings}
        assert set(part.batch_size) == set(ns.BATCH_SIZES)
        assert (part.groupby(["setting", "batch_size"]).seed.nunique() == study.seed.nunique()).all()
    assert ((study.moved_other >= 0) & (study.moved_other <= 1)).all()
    assert ((study.moved_other_encoder >= 0) & (study.moved_other_encoder <= 1)).all()
    assert (study.codes_hit >= 1).all() and (study.codes_hit <= study.num_codes).all()
    # the same seeds checked against the study itself are within tolerance, the means identical
    check = ns.STUDY.recheck(study[study.seed < 3], study)
    assert check["ok"].all() and len(check) == len(ns.summary(study)) * len(ns.STATISTICS)
    self_check = ns.STUDY.recheck(study, study)
    assert (self_check.committed == self_check.recomputed).all()
    assert "within tolerance of the committed study ✓" in ns.STUDY.report(check)


def test_claim_verdicts_read_both_designs_of_the_study():
    study, _ = ns.load()
    vs = ns.claim_verdicts(study)
    n_one = len(ns.DESIGNS[0][1])
    same = study[study.design == "same images seen"]
    testable = sum(bool((same[(same.setting == st) & (same.batch_size == same.batch_size.min())].codes_emptied > 0).any())
                   for st in dict.fromkeys(same.setting))
    assert len(vs) == 4 * n_one + len(ns.DESIGNS[1][1]) + testable
    assert 0 < testable < len(ns.DESIGNS[1][1])      # the committed study has both kinds of setting
    assert all(v.n == study.seed.nunique() for v in vs if not v.parts)
    # the same verdicts from the two raw tables of settings_sweep
    one, same = study[study.design == "one step"], study[study.design == "same images seen"]
    assert [v.verdict for v in ns.claim_verdicts(one, same)] == [v.verdict for v in vs]
    # claims that read "more stable updates" (Fig. 4's caption) as less drift are labelled ours; the
    # paper's own statements (more codes hit, dead codes appear, fewer emptied cells) are not
    ours = {v.claim for v in vs if v.side == ns.OUR_READING}
    assert len(ours) == n_one + len(ns.DESIGNS[1][1])
    assert all("drift" in c or "latents change cell" in c for c in ours)
    assert not any(v.side for v in vs if "hits more codes" in v.claim or "emptied" in v.claim or "loses" in v.claim)
    from paper_repro.experiments import verdicts as vv
    rows = vv.claim_rows(pages={"nonstationarity"})
    assert (rows["paper"] == ns.OUR_READING).sum() == len(ours)


def test_the_pages_reading_quotes_the_study_and_follows_its_verdicts():
    study, _ = ns.load()
    text = ns.reading(study)
    t = ns.summary(study).set_index(["design", "setting", "batch_size"])
    enc = t.loc[("one step", "Adam 5e-4, at init", 1), "moved_other_encoder_mean"]
    assert f"{100 * enc:.0f}% [Adam 5e-4, at init]" in text
    steps = int(t.loc[("same images seen", "SGD 0.05, pretrained", 1), "steps"])
    assert f"[SGD 0.05, pretrained] {steps} steps of B=1" in text
    sgd = [v for v in ns.claim_verdicts(study) if v.claim.startswith("[SGD 0.05, pretrained, same images seen]")][0]
    holds = text.split("less drift per image seen) ")[1]
    assert (sgd.verdict == "supported") == ("[SGD 0.05, pretrained]" in holds)
    # the SGD drift made to grow with the batch at the same images seen: no longer where the argument holds,
    # and the one-step SGD drift made to grow too: its claim and the prose say contradicted
    flipped = study.copy()
    rows = flipped.setting == "SGD 0.05, pretrained"
    flipped.loc[rows, "moved_other"] = flipped.loc[rows, "batch_size"] / 100.0 + 0.001 * flipped.loc[rows, "seed"]
    text = ns.reading(flipped)
    assert "[SGD 0.05, pretrained]" not in text.split("less drift per image seen) ")[1]
    assert "[SGD 0.05, pretrained] 2% at B=1, 65% at B=64, contradicted that it falls" in text
