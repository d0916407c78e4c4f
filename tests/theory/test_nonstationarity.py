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
    assert r.moved_other == 0.0 and r.codes_emptied == 0 and r.rel_drift == 0.0
    assert 1 <= r.codes_hit <= 8


def test_a_real_step_moves_latents_and_is_deterministic(images):
    kw = dict(seed=1, images=images, num_codes=8, code_dim=4, width=0.125, pretrain_steps=2)
    a = ns.drift_experiment(4, **kw)
    b = ns.drift_experiment(4, **kw)
    assert a == b
    assert a.rel_drift > 0


def test_bad_arguments(images):
    with pytest.raises(ValueError, match="held-out"):
        ns.drift_experiment(24, images=images, pretrain_steps=0, width=0.125, code_dim=4, num_codes=8)
    with pytest.raises(ValueError, match="optimizer"):
        ns.drift_experiment(2, images=images, optimizer="rmsprop")
