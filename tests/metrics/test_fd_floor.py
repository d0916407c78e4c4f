"""The FD floor study: draws, the sizes it covers, and the caption sentence from the committed table."""

import numpy as np
import pandas as pd
import pytest
import torch

from paper_repro.metrics import fd_floor as F
from paper_repro.metrics.fid import frechet_distance


def test_sizes_come_from_the_profiles_that_report_fd_at_native_resolution():
    from paper_repro.profiles import PROFILES
    got = F.sizes()
    assert got == tuple(sorted(got)) and got
    for n in got:
        assert any(p.eval_images == n and p.fd_resize is None and p.dataset == "fashion_mnist"
                   for p in PROFILES.values())


def test_fd_between_matches_the_closed_form_on_gaussian_features():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4000, 3, generator=g, dtype=torch.float64) * 2.0 + 1.0
    # independent reference: numpy moments and the scalar formula for commuting (diagonal-ish) covariances
    ma, mb = a.mean(0).numpy(), b.mean(0).numpy()
    ca, cb = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    assert F.fd_between(a, b) == pytest.approx(frechet_distance(ma, ca, mb, cb), rel=1e-9)
    # the population value: ||1||^2 + sum (1 - 2)^2 = 3 + 3 = 6, within sampling error
    assert F.fd_between(a, b) == pytest.approx(6.0, abs=0.4)
    assert F.fd_between(a, a) == pytest.approx(0.0, abs=1e-9)


def test_draws_are_seeded_disjoint_from_nothing_and_refuse_a_small_pool():
    g = torch.Generator().manual_seed(1)
    pool = torch.randn(300, 4, generator=g, dtype=torch.float64)
    ev = {50: torch.randn(50, 4, generator=g, dtype=torch.float64)}
    d1, d2 = F.draws(ev, pool, seeds=(0, 1, 2)), F.draws(ev, pool, seeds=(0, 1, 2))
    assert list(d1.columns) == ["eval_images", "seed", "fd_real_real"] and len(d1) == 3
    pd.testing.assert_frame_equal(d1, d2)                     # same seeds, same draws
    assert d1["fd_real_real"].nunique() == 3 and (d1["fd_real_real"] > 0).all()
    # a larger sample from the same distribution lies closer (FD's small-sample bias shrinks with n)
    big = F.draws({250: pool[:250]}, torch.randn(3000, 4, generator=g, dtype=torch.float64), seeds=(0, 1, 2))
    assert big["fd_real_real"].mean() < d1["fd_real_real"].mean()
    with pytest.raises(ValueError, match="pool of at least 50"):
        F.draws(ev, pool[:40], seeds=(0,))


def test_scale_reads_the_committed_table_and_says_nothing_where_it_does_not_apply(tmp_path, monkeypatch):
    df = pd.DataFrame({"eval_images": [2000] * 3 + [512] * 3, "seed": [0, 1, 2] * 2,
                       "fd_real_real": [1.0, 1.2, 1.4, 5.0, 5.0, 5.0]})
    monkeypatch.setattr(type(F.STUDY), "load", lambda self, path=None: (df, {}))
    s = F.scale(2000, "FD-VGG16@native")
    assert s == ("two independent samples of 2,000 real images lie FD-VGG16@native 1.20 \u00b1 0.20 apart "
                 "(mean \u00b1 sd over 3 draws, study fd_floor)")
    assert F.scale(2000, "FD-VGG16") == "" and F.scale(777, "FD-VGG16@native") == ""
    assert F.scale(2000, "rFID") == ""


def test_scale_is_silent_without_a_committed_study(monkeypatch):
    def missing(self, path=None):
        raise FileNotFoundError("no study")
    monkeypatch.setattr(type(F.STUDY), "load", missing)
    assert F.scale(2000, "FD-VGG16@native") == ""
