"""Maths checks of the Supp. 11 toy demos (paper_repro.toy)."""
import math

import numpy as np
import pytest

from paper_repro import toy
from paper_repro.toy import demos


def test_translation_drift_converges_to_target_mean():
    # theta <- theta + r mean(Y_b - X_b) with X_b = X + theta, Y_b = X + (10, 10):
    # theta_t = (10,10) (1 - (1-r)^t) exactly, whatever the batch.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 2))
    y = x + np.array([10.0, 10.0])
    theta = np.zeros(2)
    for t in range(1, 61):
        idx = rng.choice(1500, 64, replace=False)
        theta = toy.translation_drift(theta, x[idx] + theta, y[idx], 0.1)
        np.testing.assert_allclose(theta, 10.0 * (1 - 0.9 ** t) * np.ones(2), rtol=1e-12)
    res = toy.run("translation", "ema", seed=3)
    np.testing.assert_allclose(res.final_cloud.mean(0), res.snapshots[-1].target.mean(0), atol=1e-6)


def test_matrix_drift_is_closed_form_gradient_step():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 2))
    xb = rng.normal(size=(7, 2))
    yb = rng.normal(size=(7, 2))
    r = 0.1
    # gradient of f(A) = ||Y - X A^T||_F^2 by central finite differences
    f = lambda A: ((yb - xb @ A.T) ** 2).sum()
    grad = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e = np.zeros((2, 2)); e[i, j] = 1e-6
            grad[i, j] = (f(a + e) - f(a - e)) / 2e-6
    expected = a - r * grad / xb.shape[0]        # A + r (2/B) E^T X = A - (r/B) grad f
    np.testing.assert_allclose(toy.matrix_drift(a, xb, yb, r), expected, atol=1e-6)


def test_expansion_and_shrink_reach_M_with_the_drawn_norm():
    for scen, key in [("expansion", "expansion_scale"), ("shrink", "shrink_scale")]:
        res = toy.run(scen, "ema", seed=2)
        a = res.drift_state
        assert np.linalg.norm(a, 2) == pytest.approx(getattr(res.config, key), rel=1e-3)


def test_split_drift_moves_quadrants_apart():
    res = toy.run("split", "ema", seed=0)
    theta = res.drift_state
    np.testing.assert_allclose(theta, [10.0, 10.0], atol=1e-2)  # rate r*mean(sign X) ~ 0.04 per step
    base = res.snapshots[-1].base
    np.testing.assert_allclose(res.final_cloud, base + np.sign(base) * theta, atol=1e-12)
    # all points end at least |theta| away from the axes, in their own quadrant
    assert (np.abs(res.final_cloud) >= theta.min() - 1e-12).all()
    assert (np.sign(res.final_cloud) == np.sign(base)).all()


def test_ema_update_formula():
    c = np.array([[0.0, 0.0], [5.0, 5.0], [-9.0, 9.0]])
    xb = np.array([[1.0, 0.0], [0.0, 1.0], [6.0, 6.0]])
    out = toy.supp11_ema_update(c, xb, 0.3)
    np.testing.assert_allclose(out[0], 0.7 * c[0] + 0.3 * np.array([0.5, 0.5]))
    np.testing.assert_allclose(out[1], 0.7 * c[1] + 0.3 * np.array([6.0, 6.0]))
    np.testing.assert_allclose(out[2], c[2])       # no samples: unchanged


@pytest.mark.parametrize("include_winner", [True, False])
def test_nsvq_online_step_hand_example(include_winner):
    c = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    x = np.array([0.2, 0.1])
    lr, tau = 0.5, 2.0
    # winner is code 0; d = (0, 1, 4)
    if include_winner:
        z = 1 + math.exp(-0.5) + math.exp(-2.0)
        om = [0.0, math.exp(-0.5) / z, math.exp(-2.0) / z]
    else:
        z = math.exp(-0.5) + math.exp(-2.0)
        om = [0.0, math.exp(-0.5) / z, math.exp(-2.0) / z]
    expected = c.copy()
    expected[0] += lr * (x - c[0])
    expected[1] += lr * om[1] * (x - c[1])
    expected[2] += lr * om[2] * (x - c[2])
    out = toy.supp11_nsvq_step(c, x, lr, tau, include_winner)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # the fast batch loop used by run() does the same arithmetic
    np.testing.assert_allclose(demos._nsvq_batch(c, x[None], lr, tau, include_winner), expected, rtol=1e-12)


def test_usage_and_distortion_hand_example():
    c = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [-5.0, -5.0]])
    x = np.array([[1.0, 0.0], [0.0, 2.0], [9.0, 0.0]])
    usage, dist = toy.usage_and_distortion(x, c)
    assert usage == pytest.approx(2 / 4)
    assert dist == pytest.approx((1.0 + 4.0 + 1.0) / 3)
    with pytest.raises(ValueError, match="NaN"):
        toy.usage_and_distortion(np.array([[np.nan, 0.0]]), c)


def test_transvq_closed_form_gradients_match_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    base = rng.normal(size=(16, 2))
    m = demos.TransVQMap(base, hidden=5, lr=0.1, seed=4)
    m.params["V"] = rng.normal(size=(2, 5))           # non-trivial nonlinear part
    m.params["W"] = rng.normal(size=(2, 2))
    batch = rng.normal(size=(40, 2)) * 2
    loss, grads = m.loss_and_grads(batch)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    c0 = torch.tensor(base)
    cb = c0 @ tp["W"].T + tp["b"] + torch.tanh(c0 @ tp["U"].T + tp["u"]) @ tp["V"].T
    idx = torch.tensor(toy.nearest_code(batch, cb.detach().numpy()))
    tloss = ((torch.tensor(batch) - cb[idx]) ** 2).sum(1).mean()
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    for k in tp:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rule", toy.RULES)
def test_determinism_per_seed(rule):
    a = toy.run("split", rule, seed=5, epochs=2)
    b = toy.run("split", rule, seed=5, epochs=2)
    c = toy.run("split", rule, seed=6, epochs=2)
    np.testing.assert_array_equal(a.final_codebook, b.final_codebook)
    assert not np.array_equal(a.final_codebook, c.final_codebook)


def test_same_data_and_init_across_rules():
    a = toy.run("shrink", "ema", seed=1, epochs=1)
    b = toy.run("shrink", "nsvq", seed=1, epochs=1)
    np.testing.assert_array_equal(a.snapshots[0].codebook, b.snapshots[0].codebook)
    np.testing.assert_array_equal(a.final_cloud, b.final_cloud)


def test_snapshots_and_step_count():
    res = toy.run("translation", "nsvq", seed=0, batch_size=100, epochs=3)
    assert res.n_steps == 15 * 3
    assert [s.step for s in res.snapshots] == [0, 11, 22, 34, 45]
    assert res.snapshots[-1].codebook.shape == (16, 2)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown scenario"):
        toy.run("rotation", "ema")
    with pytest.raises(ValueError, match="unknown rule"):
        toy.run("shrink", "kmeans")
    with pytest.raises(ValueError, match="unknown ToyConfig"):
        toy.run("shrink", "ema", batchsize=3)
    with pytest.raises(ValueError, match="shrink needs"):
        toy.run("shrink", "ema", shrink_scale=2.0)


def test_nsvq_keeps_more_codes_alive_than_ema_on_shrink():
    # The qualitative claim of Figures 6/7 on the shrink demo (seed 0, our defaults).
    ema = toy.run("shrink", "ema", seed=0)
    ns = toy.run("shrink", "nsvq", seed=0)
    assert ns.usage > ema.usage


def test_the_sensitivity_table_holds_the_runs_means_over_seeds():
    from paper_repro.toy import demos
    grid, scenarios, seeds = demos.SENSITIVITY_GRID[:1], demos.SCENARIOS[:2], (0, 1)
    means = demos.sensitivity(seeds, scenarios=scenarios, grid=grid)
    per_seed = demos.sensitivity(seeds, scenarios=scenarios, grid=grid, per_seed=True)
    assert means.equals(demos.sensitivity_means(per_seed))
    for s in scenarios:                     # the default row against the runs themselves
        row = means[(means.setting == "default") & (means.scenario == s)].iloc[0]
        for rule in ("ema", "nsvq"):
            runs = [demos.run(s, rule, sd) for sd in seeds]
            assert row[f"{rule}_usage"] == pytest.approx(np.mean([r.usage for r in runs]), rel=1e-12, abs=1e-12)
            assert row[f"{rule}_distortion"] == pytest.approx(np.mean([r.distortion for r in runs]), rel=1e-12)
        assert row["usage_gain"] == pytest.approx(row["nsvq_usage"] - row["ema_usage"], abs=1e-15)


# -- the committed study the page judges ------------------------------------------------------------
def test_the_committed_study_is_complete_and_matches_a_recomputed_seed():
    raw, prov = toy.load()
    sens, _ = toy.load_sensitivity()
    assert prov["setup"]["seeds"] == sorted(raw.seed.unique().tolist()) and raw.seed.nunique() >= 20
    cells = raw.groupby(["scenario", "rule"]).seed.nunique()
    assert set(cells.index) == {(s, r) for s in toy.SCENARIOS for r in toy.RULES}
    assert (cells == raw.seed.nunique()).all()
    k = toy.ToyConfig().num_codes
    assert np.allclose(raw.usage * k, np.round(raw.usage * k))        # a usage counts whole codes
    assert set(sens.setting) == {"default"} | {lbl for lbl, _ in toy.SENSITIVITY_GRID}
    # the stored default setting is the seed table's ema / nsvq runs (same configs, same seeds)
    d = sens[sens.setting == "default"].merge(raw[raw.rule == "nsvq"], on=["scenario", "seed"])
    assert np.allclose(d.nsvq_usage, d.usage) and np.allclose(d.nsvq_distortion, d.distortion, rtol=1e-6)
    # one seed recomputed here lies within the recheck rule, and the verdicts use every stored seed
    check = toy.SEEDS_STUDY.recheck(toy.seed_table([0], scenarios=("shrink",)), raw)
    assert check["ok"].all() and len(check) == len(toy.RULES) * 2
    assert all(v.n == raw.seed.nunique() for v in toy.claim_verdicts(raw))
