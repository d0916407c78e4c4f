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
    assert all(0 <= p["churn_encoder"] <= 1 for p in later)
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


def test_encoder_churn_holds_the_quantizer_as_at_the_previous_probe():
    """churn counts latents whose code changed; churn_encoder the same with the quantizer as it was at
    the previous probe: a move of the codebook alone changes churn only, a move of the latents alone
    changes both alike."""
    import torch
    from torch import nn

    from paper_repro.quantizers import build_quantizer
    from paper_repro.training.probes import LatentProbe

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.quantizer = build_quantizer("vq", num_codes=8, code_dim=2)
            with torch.no_grad():
                self.quantizer.embedding.copy_(torch.randn(8, 2))
            self.z = torch.randn(4, 2, 4, 4)

        def encode(self, x):
            return self.z

        def decode(self, zq):
            return torch.zeros(zq.shape[0], 3, 8, 8)

    m = Model()
    probe = LatentProbe(torch.rand(4, 3, 8, 8), every=1, device="cpu")
    first = probe.measure(m, 0, 0, lambda x: x)
    assert first["churn"] is None and first["churn_encoder"] is None
    with torch.no_grad():                                   # the codebook moves, the latents do not
        m.quantizer.embedding.copy_(torch.randn(8, 2))
    moved = probe.measure(m, 1, 0, lambda x: x)
    assert moved["churn"] > 0 and moved["churn_encoder"] == 0.0
    m.z = m.z + 0.7 * torch.randn_like(m.z)                 # the latents move, the codebook does not
    drift = probe.measure(m, 3, 0, lambda x: x)
    assert drift["churn"] > 0 and drift["churn_encoder"] == drift["churn"]
    assert drift["churn_encoder_per_step"] == pytest.approx(drift["churn"] / 2)
    # the held quantizer travels in the checkpoint state: a fresh probe loaded from it measures the same
    again = LatentProbe(probe.images, every=1, device="cpu")
    again.load(probe.state())
    m.z = m.z + 0.7 * torch.randn_like(m.z)
    state = probe.state()
    a, b = probe.measure(m, 4, 0, lambda x: x), (again.load(state), again.measure(m, 4, 0, lambda x: x))[1]
    assert a == b
