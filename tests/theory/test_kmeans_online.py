"""Supp. 8 checks: mean field = -1/2 grad J, Lloyd fixed point, Robbins-Monro convergence."""
import numpy as np
import pytest
import torch

from paper_repro.theory import kmeans_online as km


@pytest.fixture(scope="module")
def setup():
    x = km.make_data(n=800, n_blobs=5, seed=1)
    c0 = km.init_codes(x, 5, seed=1)
    c_star, _ = km.lloyd(x, c0)
    return x, c0, c_star


def test_mean_field_is_minus_half_autograd_gradient(setup):
    x, c0, _ = setup
    rng = np.random.default_rng(0)
    c = c0 + rng.normal(scale=0.3, size=c0.shape)      # a generic point, away from ties
    ct = torch.tensor(c, requires_grad=True)
    xt = torch.tensor(x)
    j = torch.cdist(xt, ct).pow(2).min(1).values.mean()
    j.backward()
    np.testing.assert_allclose(km.mean_field(x, c), -0.5 * ct.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(km.grad_distortion(x, c), ct.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert km.distortion(x, c) == pytest.approx(j.item(), rel=1e-12)


def test_mean_field_hand_example():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [12.0, 2.0]])
    c = np.array([[1.0, 1.0], [10.0, 0.0], [-50.0, 0.0]])
    h = km.mean_field(x, c)
    np.testing.assert_allclose(h[0], ((x[0] - c[0]) + (x[1] - c[0])) / 4)
    np.testing.assert_allclose(h[1], ((x[2] - c[1]) + (x[3] - c[1])) / 4)
    np.testing.assert_allclose(h[2], 0.0)


def test_lloyd_fixed_point_is_fixed_point_of_mean_update(setup):
    x, _, c_star = setup
    assert np.abs(km.mean_field(x, c_star)).max() < 1e-12       # h(C*) = 0, Eq. A3
    np.testing.assert_allclose(km.lloyd_step(x, c_star), c_star, atol=1e-12)
    idx = km.assign(x, c_star)
    for k in range(len(c_star)):
        np.testing.assert_allclose(c_star[k], x[idx == k].mean(0), atol=1e-12)


def test_ode_flow_decreases_J_monotonically_and_reaches_stationarity(setup):
    x, c0, c_star = setup
    res = km.ode_flow(x, c0, dt=0.5, steps=600)
    assert (np.diff(res.J) <= 1e-12).all()                       # Eq. A11
    assert res.grad_norm2[-1] < 1e-6 * res.grad_norm2[0]
    assert np.abs(km.mean_field(x, res.codes)).max() < 1e-3


def test_robbins_monro_converges_near_lloyd_fixed_point(setup):
    x, c0, c_star = setup
    res = km.online_vq(x, c0, 40000, km.rm_schedule(0.5, 100.0, 0.7), seed=0, reference=c_star)
    early = res.err[np.searchsorted(res.steps, 1000)]
    assert res.err[-1] < 1e-2 * res.err[0]       # from ~40 to ~0.05
    assert res.err[-1] < early / 5               # still improving after the transient
    # and the limit is (nearly) a k-means fixed point itself
    assert km.code_error(km.lloyd_step(x, res.codes), res.codes) < 0.05


def test_schedules_and_errors():
    with pytest.raises(ValueError, match="Robbins-Monro"):
        km.rm_schedule(power=0.4)
    with pytest.raises(ValueError, match="same d"):
        km.distortion(np.zeros((3, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        km.mean_field(np.array([[np.nan, 0.0]]), np.zeros((1, 2)))


@pytest.mark.slow
def test_constant_step_noise_floor_scales_with_eta(setup):
    x, _, c_star = setup
    df, slope = km.noise_floor(x, c_star, etas=(0.005, 0.04), steps=12000, seeds=(0, 1))
    assert 0.6 < slope < 1.4
    assert (df.mean_sq_dist > 0).all()
