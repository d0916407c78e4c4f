"""Training probes: measured at the stated steps, without changing training, exact across a resume."""
import pytest

from paper_repro.training import train
from paper_repro.training.trainer import StopAfter

from ._helpers import tiny_config, tiny_data


def test_probes_leave_training_unchanged_and_land_at_their_steps():
    data = tiny_data()                               # 8 steps per epoch, 2 epochs
    plain = train(tiny_config(quantizer="nsvq"), data=data)
    probed = train(tiny_config(quantizer="nsvq", probe_every=3, probe_images=32), data=data)
    assert "probes" not in plain
    assert probed["final"] == plain["final"] and probed["trace"] == plain["trace"]
    assert probed["config_hash"] != plain["config_hash"]          # the record holds more: its own hash
    steps = [p["step"] for p in probed["probes"]]
    assert steps == [0, 3, 6, 8, 9, 12, 15, 16]                   # step 0, every 3, each epoch's end
    first, later = probed["probes"][0], probed["probes"][1:]
    assert first["churn"] is None and all(p["churn"] is not None for p in later)
    for p in probed["probes"]:
        assert 0 < p["probe_usage"] <= 1 and 1 <= p["latent_rank"] <= 8
        assert 0 <= p["kernel_mass"] <= 31 and p["kernel_scale"] > 0
    assert [p["kernel_scale"] for p in probed["probes"]][-1] == pytest.approx(0.9)   # epoch 1: 2 sigma^2 0.9
    # the last probe sees the final weights and (here) the whole evaluation split: it is the evaluation
    last = probed["probes"][-1]
    assert last["probe_usage"] == pytest.approx(probed["final"]["eval_usage"])
    assert last["probe_psnr"] == pytest.approx(probed["final"]["psnr"], rel=1e-5)
    for p in later:
        assert 0 <= p["churn"] <= 1 and p["churn_per_step"] == pytest.approx(
            p["churn"] / (p["step"] - steps[steps.index(p["step"]) - 1]))


def test_probes_resume_exactly(tmp_path):
    data = tiny_data()
    cfg = tiny_config(quantizer="transvq", probe_every=4, probe_images=16, checkpoint_every=2)
    straight = train(cfg, run_dir=tmp_path / "a", data=data)
    train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopAfter(11))     # killed after step 11
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    assert resumed["resumes"] == 1
    assert resumed["probes"] == straight["probes"]
    assert all(p["attention_rank"] >= 1 for p in straight["probes"])


def test_kmeans_init_skips_the_step_zero_probe():
    probed = train(tiny_config(quantizer="vq", quantizer_options={"init": "kmeans"}, probe_every=5,
                               probe_images=8, epochs=1), data=tiny_data())
    assert [p["step"] for p in probed["probes"]] == [5, 8]
