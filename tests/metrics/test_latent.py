"""Latent-geometry measures against hand-computed values and NumPy."""
import math

import numpy as np
import pytest
import torch

from paper_repro.metrics.latent import (
    assignment_churn, covariance_spectrum, entropy_rank, participation_ratio, rms_spread, stacked_fraction,
)


def test_participation_ratio_of_known_spectra():
    g = torch.Generator().manual_seed(0)
    iso = torch.randn(20000, 8, generator=g, dtype=torch.float64)
    assert participation_ratio(iso) == pytest.approx(8.0, rel=0.02)          # isotropic: D
    line = torch.randn(500, 1, generator=g, dtype=torch.float64) * torch.tensor([[1.0, 2.0, -3.0]])
    assert participation_ratio(line) == pytest.approx(1.0, abs=1e-9)         # one direction: 1
    # exact: axis-aligned variances (4, 1) -> (5)^2 / (16 + 1)
    x = torch.tensor([[2.0, 1.0], [-2.0, -1.0], [2.0, -1.0], [-2.0, 1.0]], dtype=torch.float64)
    assert participation_ratio(x) == pytest.approx(25 / 17)
    assert participation_ratio(torch.ones(5, 3)) == 0.0                      # no spread at all


def test_spectrum_matches_numpy_and_is_rotation_invariant():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1])
    ref = np.sort(np.linalg.eigvalsh(np.cov(x.numpy().T, bias=True)))[::-1]
    assert covariance_spectrum(x).numpy() == pytest.approx(ref, rel=1e-10, abs=1e-12)
    rot, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    assert participation_ratio(x @ rot + 7.0) == pytest.approx(participation_ratio(x), rel=1e-10)


def test_entropy_rank_and_spread():
    assert entropy_rank(torch.ones(6)) == pytest.approx(6.0)
    assert entropy_rank(torch.tensor([5.0, 0.0, 0.0])) == pytest.approx(1.0)
    p = np.array([0.5, 0.25, 0.25])
    assert entropy_rank(torch.tensor([2.0, 1.0, 1.0])) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert entropy_rank(torch.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="spectrum"):
        entropy_rank(torch.tensor([1.0, -1.0]))
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]])                # mean (1, 0): both at distance 1
    assert rms_spread(x) == pytest.approx(1.0)


def test_stacked_fraction_counts_rows_sitting_on_another_across_chunks():
    c = torch.tensor([[0.0, 0.0], [0.0, 1e-5], [1.0, 0.0], [2.0, 0.0]])
    assert stacked_fraction(c, 1e-3) == 0.5 and stacked_fraction(c, 1.5) == 1.0 and stacked_fraction(c, 0.0) == 0.0
    assert stacked_fraction(c[:1], 1.0) == 0.0                     # a single row has no other
    # 64-D, far from the origin: pairs 1e-6 apart found across chunk borders, the expansion in float64
    g = torch.Generator().manual_seed(0)
    x = 4.0 + torch.randn(300, 64, generator=g, dtype=torch.float64)
    x = torch.cat([x, x[:100] + 1e-6 * torch.randn(100, 64, generator=g, dtype=torch.float64)])
    for chunk in (7, 128, 1024):
        assert stacked_fraction(x, 1e-4, chunk=chunk) == pytest.approx(200 / 400)
    with pytest.raises(ValueError, match="tol"):
        stacked_fraction(c, -1.0)


def test_churn_and_input_errors():
    assert assignment_churn(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 3, 2])) == 0.5
    with pytest.raises(ValueError, match="same"):
        assignment_churn(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="NaN"):
        participation_ratio(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        rms_spread(torch.ones(3))
