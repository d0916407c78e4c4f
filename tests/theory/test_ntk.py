"""Empirical NTK = J J^T (naive loop) and the linearised one-step prediction (Eq. 9-11)."""
import copy

import pytest
import torch

from paper_repro.theory import ntk


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()


def _naive_jacobian(model, x):
    rows = []
    for d in range(3):
        out = model(x[None])[0, d]
        g = torch.autograd.grad(out, list(model.parameters()))
        rows.append(torch.cat([t.reshape(-1) for t in g]))
    return torch.stack(rows)                              # (D, P)


def test_empirical_ntk_equals_naive_loop():
    m = _mlp()
    xs = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jac = ntk.jacobians(m, xs)
    k = ntk.empirical_ntk(jac)
    assert k.shape == (5, 5, 3, 3)
    for a in range(5):
        ja = _naive_jacobian(m, xs[a])
        torch.testing.assert_close(jac[a], ja)
        for b in range(5):
            torch.testing.assert_close(k[a, b], ja @ _naive_jacobian(m, xs[b]).T)
    # symmetry K(x_a, x_b) = K(x_b, x_a)^T and PSD of the block Gram matrix
    torch.testing.assert_close(k, k.permute(1, 0, 3, 2))
    gram = k.permute(0, 2, 1, 3).reshape(15, 15)
    assert torch.linalg.eigvalsh(gram).min() > -1e-10


def test_linearised_step_matches_true_change_for_tiny_lr():
    m = _mlp()
    xs = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    i, lr = 0, 1e-5
    with torch.no_grad():
        e0 = m(xs)
    g_i = 2 * (e0[i] - target)                           # dL/dE for L = ||E(x_i) - t||^2
    k = ntk.empirical_ntk(ntk.jacobians(m, xs))
    pred = -lr * torch.einsum("jde,e->jd", k[:, i], g_i)  # Eq. 11
    m2 = copy.deepcopy(m)
    loss = ((m2(xs[i:i + 1])[0] - target) ** 2).sum()
    grads = torch.autograd.grad(loss, list(m2.parameters()))
    with torch.no_grad():
        for p, g in zip(m2.parameters(), grads):
            p -= lr * g
        true = m2(xs) - e0
    rel = (pred - true).norm() / true.norm()
    assert rel < 1e-3
    # and Eq. 12 (K_ji K_ii^-1 dE_i) reproduces it too when K_ii is invertible (exact in the linear regime)
    pred12 = torch.einsum("jde,e->jd", k[:, i], torch.linalg.solve(k[i, i], true[i]))
    assert (pred12 - true).norm() / true.norm() < 1e-3
    # with a large step the linearisation is visibly off (the test can fail the other way)
    m3 = copy.deepcopy(m)
    loss = ((m3(xs[i:i + 1])[0] - target) ** 2).sum()
    grads = torch.autograd.grad(loss, list(m3.parameters()))
    with torch.no_grad():
        for p, g in zip(m3.parameters(), grads):
            p -= 0.5 * g
        true_big = m3(xs) - e0
    assert (-0.5 * torch.einsum("jde,e->jd", k[:, i], g_i) - true_big).norm() / true_big.norm() > 1e-2


def test_rbf_predictions_keep_their_direction_where_the_weight_underflows():
    # Eq. 14-15 = positive weight x vector: the cosine and the ranking of the norms cannot depend on
    # the width. 2s^2 = 1e-6 puts exp(-d / 2s^2) below float64's range for every pair, so the
    # predicted vectors themselves are all zero; the relative error is then exactly 1.
    res = ntk.compare_predictions(n=12, anchors=(0, 2), pretrain_steps=5, seed=0, two_sigma2=(1e-6, "median"))
    t = res.table.set_index("method")
    for eq in ("Eq.14 RBF ({}) x dE_i", "Eq.15 practical ({})"):
        tiny, med = t.loc[eq.format("2s^2=1e-06")], t.loc[eq.format("2s^2=median")]
        assert tiny.mean_cosine == pytest.approx(med.mean_cosine, abs=1e-12) and abs(med.mean_cosine) > 1e-3
    assert t.loc["Eq.14 RBF (2s^2=1e-06) x dE_i", "spearman_norms"] == pytest.approx(
        t.loc["Eq.14 RBF (2s^2=median) x dE_i", "spearman_norms"], abs=1e-12)
    assert t.loc["Eq.14 RBF (2s^2=1e-06) x dE_i", "median_rel_error"] == 1.0
    assert t.loc["Eq.14 RBF (2s^2=median) x dE_i", "median_rel_error"] < 1.0


def test_eq12_input_error_vanishes_in_the_linear_regime_and_grows_with_the_step():
    # K_ii^-1 dE_i = -eta g_i exactly for a linear step; the non-linear part grows like eta^2
    errs = {lr: max(ntk.compare_predictions(n=12, anchors=(0, 2), pretrain_steps=5, seed=0, lr=lr).eq12_input_error)
            for lr in (1e-6, 1e-2)}
    assert errs[1e-6] < 1e-4 and errs[1e-2] > 100 * errs[1e-6]


def test_seed_rows_carry_the_table_and_the_committed_study_judges_every_seed():
    with pytest.raises(ValueError, match=r"anchor\(s\) \[1\] are the only member"):   # its gradient is 0
        ntk.compare_predictions(n=12, anchors=(0, 1), pretrain_steps=5, seed=0)
    res = ntk.compare_predictions(n=12, anchors=(0, 2), pretrain_steps=5, seed=0)
    row = ntk.seed_row(res, "small", 0)
    t = res.table.set_index("method")
    assert row["cos_eq11"] == t.loc[ntk.E11, "mean_cosine"] and row["relerr_eq12"] == t.loc[ntk.E12, "median_rel_error"]
    assert row["ntk_vs_distance"] == res.ntk_vs_distance and set(row) == {"step", "seed", *ntk.STUDY.statistics}
    study, prov = ntk.load()
    assert prov["setup"]["seeds"] == sorted(study.seed.unique().tolist()) and study.seed.nunique() >= 5
    assert (study.groupby("step").seed.nunique() == study.seed.nunique()).all()
    assert set(study.step) == {s for s, _ in ntk.STEPS}
    assert study[[c for c in study if c.startswith("cos_")]].abs().max().max() <= 1 + 1e-9
    vs = ntk.claim_verdicts(study)
    assert len(vs) == 8 and all(v.n == study.seed.nunique() for v in vs)
