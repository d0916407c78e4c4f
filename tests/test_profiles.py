import pytest

from paper_repro.profiles import AUTO, PROFILES, get_profile


def test_profiles_are_ordered_by_scale():
    ci, gpu = PROFILES["ci"], PROFILES["gpu"]
    assert ci.train_images < 60_000 and gpu.train_images is None
    assert ci.backbone_width < gpu.backbone_width == PROFILES["paper"].backbone_width == 1.0
    assert PROFILES["paper"].dataset == "celeba_hq" and PROFILES["paper"].epochs == 40


def test_auto_means_ci_for_computations_without_committed_results():
    assert get_profile(AUTO) is PROFILES["ci"]


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(ValueError, match="ci, cpu, gpu, paper, auto"):
        get_profile("huge")


def test_scale_order_for_auto_and_which_profiles_are_evidence():
    from paper_repro.profiles import profiles_by_scale
    assert profiles_by_scale() == ["paper", "gpu", "cpu", "ci"]
    assert not PROFILES["ci"].evidence and all(PROFILES[p].evidence for p in ("cpu", "gpu", "paper"))
    assert len({p.rank for p in PROFILES.values()}) == len(PROFILES)
