"""NS-VQ's kernel as mean shift: the density identity against the package's loss, the measures on
known cases, the claim rule on made-up counts, and the committed study rechecked on one cell."""
import math

import pandas as pd
import pytest
import torch

from paper_repro import verdict as V
from paper_repro.theory import meanshift as ms


@pytest.mark.parametrize("width,seed", [(0.1, 0), (1.0, 3)])
def test_the_kernel_losss_codebook_gradient_is_the_density_gradient_and_a_mean_shift_step(width, seed):
    """The package computes the loss in float32 with a closed-form backward; the reference is the
    density written out in float64 and differentiated by autograd."""
    got = ms.kernel_gradient_check(width=width, seed=seed)
    assert got["max_rel_error"] < 1e-4
    assert got["meanshift_step_error"] < 1e-4


def test_the_check_fails_when_the_kernel_is_not_the_density_gradient(monkeypatch):
    """A reference density at another width misses: the check can fail."""
    real = ms.kde
    monkeypatch.setattr(ms, "kde", lambda z, c, width, exclude=None: real(z, c, 2 * width, exclude))
    assert ms.kernel_gradient_check(width=0.1)["max_rel_error"] > 1e-2


def test_kde_values_and_the_winners_exclusion():
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    c = torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    p = ms.kde(z, c, 0.5)
    assert p[0].item() == pytest.approx(1 + math.exp(-1 / 0.5))
    assert p[1].item() == pytest.approx(math.exp(-4 / 0.5) + math.exp(-5 / 0.5))
    p = ms.kde(z, c, 0.5, exclude=torch.tensor([0, 1]))      # latent 0 won by code 0, latent 1 by code 1
    assert p[0].item() == pytest.approx(math.exp(-1 / 0.5)) and p[1].item() == pytest.approx(math.exp(-4 / 0.5))


@pytest.mark.parametrize("width,modes", [(0.2, 2), (0.45, 2), (0.55, 1), (2.0, 1)])
def test_two_points_density_is_bimodal_exactly_when_their_distance_exceeds_two_sigma(width, modes):
    """Two equal Gaussians a distance d apart have two modes iff d > 2 sigma, i.e. d^2 > 2 * width
    (width = 2 sigma^2); here d = 1, so the switch is at width 0.5."""
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert ms.kde_modes(x, width, iters=20000) == modes
    if modes == 1:   # one mode: the midpoint, by symmetry
        assert ms.kde_mode_points(x, width, iters=20000)[0].tolist() == pytest.approx([0.5, 0.0], abs=1e-6)


def test_stacked_and_distinct_on_known_codes():
    c = torch.tensor([[0.0, 0.0], [0.0, 1e-5], [1.0, 0.0], [2.0, 0.0]])
    assert ms.stacked_fraction(c, 1e-3) == 0.5
    assert len(ms.distinct_points(c, 1e-3)) == 3 and ms.distinct_points(c, 1e-3)[1].tolist() == [1.0, 0.0]
    assert ms.stacked_fraction(c, 1.5) == 1.0 and len(ms.distinct_points(c, 1.5)) == 2


def test_bad_arguments_are_refused():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="init must be one of"):
        ms.fit(x, 2, 0.1, "random")
    with pytest.raises(ValueError, match="unknown arms"):
        ms.study(seeds=(0,), arms=("2σ² = 7",))


def _rows(used: dict, stacked: float = 0.95, seeds=range(3)):
    """Made-up study rows at the k-means start: used[(arm, K)] codes in use, the same every seed
    but for a +-1 wobble on seed 1's kernel arms."""
    rows = []
    for (arm, k), u in used.items():
        for s in seeds:
            n = u + (1 if s == 1 and arm != "kernel off" else 0)
            rows.append({"init": "kmeans", "arm": arm, "K": k, "seed": s, "used": n, "usage": n / k,
                         "stacked": 0.0 if arm == "kernel off" else stacked, "modes": math.nan})
    return pd.DataFrame(rows)


def test_claim_rule_on_made_up_counts():
    mean_shift = {("kernel off", 64): 64, ("kernel off", 256): 256, ("2σ² = 0.1", 64): 10,
                  ("2σ² = 0.1", 256): 10, ("2σ² = 1", 64): 6, ("2σ² = 1", 256): 6}
    got = ms.claim_verdicts(_rows(mean_shift))
    assert len(got) == 6 and {v.verdict for v in got} == {V.SUPPORTED} and all(v.side == V.OURS for v in got)
    # a kernel that kept every code (seed 1 one more, as above): no claim but the control holds
    kept = {key: key[1] for key in mean_shift}
    got = [v.verdict for v in ms.claim_verdicts(_rows(kept, stacked=0.0))]
    assert got[0] == V.SUPPORTED and got[1] == V.INCONCLUSIVE and got[2:] == [V.CONTRADICTED] * 4


def test_committed_study_rechecks_on_one_cell():
    """The committed study's widest kernel at K = 64, seed 0, recomputed here within the study's rule
    (statistical: other float kernels may settle a contested code elsewhere)."""
    df, prov = ms.load()
    assert df["seed"].nunique() >= 10 and set(df["arm"]) == set(ms.ARMS) and set(df["K"]) == set(ms.SIZES)
    assert prov["setup"]["steps"] == 2000 and prov["setup"]["arms"] == {a: w for a, w in ms.ARMS.items()}
    check = ms.recheck(df, prov["setup"], seeds=(0,), sizes=(64,), arms=("2σ² = 1",))
    assert len(check) == 3 and check["ok"].all(), ms.STUDY.report(check)


def test_recheck_uses_the_committed_setup_and_can_fail(monkeypatch):
    df, prov = ms.load()
    seen = {}

    def fake_study(**kw):
        seen.update(kw)
        return (df[df.seed.isin(kw["seeds"]) & df.init.isin(kw["inits"]) & df.K.isin(kw["sizes"])]
                .assign(used=lambda t: t.used + shift))

    monkeypatch.setattr(ms, "study", fake_study)
    shift = 0
    check = ms.recheck(df, prov["setup"])
    assert seen["steps"] == prov["setup"]["steps"] and seen["lr"] == prov["setup"]["lr"]
    assert seen["seeds"] == (0,) and seen["inits"] == ("kmeans",) and seen["sizes"] == (256,)
    assert check["ok"].all() and len(check) == 3 * len(ms.ARMS)
    shift = 150                     # 150 codes more in use everywhere: outside every used tolerance (the widest: 112)
    bad = ms.recheck(df, prov["setup"]).set_index("statistic").loc["used"]
    assert bad.can_fail.any() and not bad[bad.can_fail]["ok"].any()
    with pytest.raises(ValueError, match="at least one seed"):
        ms.recheck(df, prov["setup"], seeds=())


def test_group_points_counts_the_rows_at_each_place():
    c = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1e-5], [2.0, 1e-5], [0.0, -1e-5]])
    reps, sizes = ms.group_points(c, 1e-3)
    assert reps.tolist() == [[0.0, 0.0], [2.0, 0.0]] and sizes == [3, 2]
