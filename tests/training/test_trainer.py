"""Trainer: exact resume, NaN stop keeping the last good checkpoint, record schema and its maths,
encoder freezing, learning-rate schedule. Real backbones and quantizers on tiny synthetic images."""
import json

import numpy as np
import pytest
import torch

from paper_repro.training import (CHECKPOINT_NAME, RECORD_NAME, SAMPLES_NAME, NonFiniteLossError,
                                  TrainingInterrupted, build_model, config_hash, load_checkpoint, train)
from paper_repro.training.trainer import InjectNaN, StopAfter, _to_float, trace_steps

from ._helpers import tiny_config, tiny_data


def _all_tensors(ck):
    """Flatten a (checkpoint) structure to {path: tensor-or-primitive}."""
    out = {}

    def walk(prefix, v):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}/{k}", x)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(f"{prefix}/{i}", x)
        else:
            out[prefix] = v
    walk("", ck)
    return out


@pytest.mark.parametrize("quantizer", ["vq", "nsvq", "ema"])
def test_resume_after_kill_is_bit_exact(tmp_path, quantizer):
    """N steps straight == k steps, kill (progress after the last checkpoint is lost), resume to N."""
    data = tiny_data()              # 64 images, batch 8: 8 steps/epoch, 2 epochs = 16 steps
    cfg = tiny_config(quantizer=quantizer, checkpoint_every=3)
    straight = train(cfg, run_dir=tmp_path / "a", data=data)
    killed = train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopAfter(11))
    assert killed["status"] == "killed"
    ck = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)
    assert ck["state"]["global_step"] == 9 and ck["state"]["step_in_epoch"] == 1   # mid-epoch 1
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    assert resumed["resumes"] == 1
    a = _all_tensors(load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME))
    b = _all_tensors(load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME))
    assert a.keys() == b.keys()
    for k in a:
        if "/state/" in k and k.split("/")[-1] in ("train_seconds", "resumes", "train_images"):
            continue                                            # wall-clock bookkeeping
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k
    assert straight["epochs"] == resumed["epochs"]
    assert straight["final"] == resumed["final"]


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    data = tiny_data()
    train(tiny_config(max_steps=2, checkpoint_every=1), run_dir=tmp_path, data=data)
    with pytest.raises(ValueError, match="belongs to config"):
        train(tiny_config(max_steps=2, lr=1e-3), run_dir=tmp_path, data=data, resume=True)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    data = tiny_data()
    cfg = tiny_config(checkpoint_every=2)
    with pytest.raises(NonFiniteLossError) as ei:
        train(cfg, run_dir=tmp_path, data=data, callbacks=InjectNaN(5))
    e = ei.value
    assert (e.step, e.epoch, e.terms) == (5, 0, ["quantizer"])
    assert "step 5" in str(e) and "quantizer" in str(e) and "step 4" in str(e)
    ck = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert ck["state"]["global_step"] == 4
    assert all(torch.isfinite(t).all() for t in ck["model"].values() if t.is_floating_point())
    assert not (tmp_path / RECORD_NAME).exists()
    # the kept checkpoint is the genuine step-4 state: it equals a clean run stopped at 4 steps
    clean = tmp_path / "clean"
    train(cfg.replace(max_steps=4), run_dir=clean, data=data)
    ref = load_checkpoint(clean / CHECKPOINT_NAME)["model"]
    assert all(torch.equal(ck["model"][k], ref[k]) for k in ref)


def test_nan_check_names_the_reconstruction_term_too(tmp_path, monkeypatch):
    data = tiny_data()
    train_x, eval_x = data
    cfg = tiny_config(nonfinite_check_every=4)

    class Poison(torch.nn.Module):          # a model whose reconstruction turns NaN at step 2
        def __init__(self):
            super().__init__()
            self.inner = build_model(cfg)
            self.quantizer, self.encoder, self.calls = self.inner.quantizer, self.inner.encoder, 0

        def forward(self, x):
            out = self.inner(x)
            self.calls += 1
            if self.calls == 3:
                out["recon"] = out["recon"] * float("inf")
            return out
    with pytest.raises(NonFiniteLossError, match="reconstruction") as ei:
        train(cfg, data=data, model_factory=lambda c: Poison())
    assert ei.value.step == 2        # found although checks run only every 4 steps


def test_record_schema_and_metrics_match_independent_computation(tmp_path):
    from paper_repro.experiments.store import RECORD_KEYS, validate_record
    data = tiny_data()
    cfg = tiny_config(quantizer="nsvq", checkpoint_every=5, experiment="t", profile="ci")
    rec = train(cfg, run_dir=tmp_path, data=data)
    assert all(k in rec for k in RECORD_KEYS)
    validate_record(rec)
    on_disk = json.loads((tmp_path / RECORD_NAME).read_text())
    assert on_disk["config_hash"] == config_hash(cfg) == rec["config_hash"]
    assert (tmp_path / SAMPLES_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rec["steps"] == 16 and [e["epoch"] for e in rec["epochs"]] == [0, 1]
    for e in rec["epochs"]:
        assert e["train_loss"] == pytest.approx(e["train_recon_loss"] + e["train_quantizer_loss"])
        assert 0 < e["train_epoch_usage"] <= 1
        assert e["train_epoch_usage"] * cfg.num_codes == cfg.num_codes - e["train_epoch_dead_codes"]
    for k in ("git_commit", "versions", "device", "date", "seed"):
        assert k in rec["provenance"]
    assert rec["images_per_s"] > 0 and rec["train_images_seen"] == 16 * 8
    # recompute the eval metrics from the final checkpoint, independently
    model = build_model(cfg)
    model.load_state_dict(load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"])
    model.eval()
    with torch.no_grad():
        x = _to_float(data[1])
        out = model(x)
    r = out["recon"].clamp(0, 1)
    idx = out["quantizer_output"].indices.flatten()
    counts = np.bincount(idx.numpy(), minlength=cfg.num_codes)
    assert rec["final"]["eval_usage"] == pytest.approx(np.mean(counts > 0))
    p = counts[counts > 0] / counts.sum()
    assert rec["final"]["eval_perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    mse_i = ((r - x) ** 2).flatten(1).mean(1).double()
    assert rec["final"]["psnr"] == pytest.approx(float((10 * torch.log10(1 / mse_i)).mean()), rel=1e-4)
    assert rec["final"]["eval_mse"] == pytest.approx(float(mse_i.mean()), rel=1e-5)


def test_learning_rate_decays_per_epoch_and_encoder_freezes(tmp_path):
    data = tiny_data()
    cfg = tiny_config(epochs=3, freeze_encoder_at_epoch=2, lr_gamma=0.5, checkpoint_every=None)
    # params after epoch 2 (index 1) vs final: encoder untouched in epoch index 2, decoder moves
    train(cfg.replace(max_steps=16), run_dir=tmp_path / "e2", data=data)
    rec = train(cfg, run_dir=tmp_path / "e3", data=data)
    assert [e["lr"] for e in rec["epochs"]] == pytest.approx([5e-4, 2.5e-4, 1.25e-4])
    assert [e["encoder_frozen"] for e in rec["epochs"]] == [False, False, True]
    a = load_checkpoint(tmp_path / "e2" / CHECKPOINT_NAME)["model"]
    b = load_checkpoint(tmp_path / "e3" / CHECKPOINT_NAME)["model"]
    enc = [k for k in a if k.startswith("encoder.")]
    dec = [k for k in a if k.startswith("decoder.") and a[k].is_floating_point()]
    assert enc and all(torch.equal(a[k], b[k]) for k in enc)
    assert any(not torch.equal(a[k], b[k]) for k in dec)


def test_deadline_interrupts_with_a_checkpoint_then_resume_finishes(tmp_path):
    import time
    data = tiny_data()
    cfg = tiny_config()
    with pytest.raises(TrainingInterrupted) as ei:
        train(cfg, run_dir=tmp_path, data=data, deadline=time.time() - 1)
    assert ei.value.step == 1
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["state"]["global_step"] == 1
    rec = train(cfg, run_dir=tmp_path, data=data, resume=True)
    assert rec["steps"] == 16 and rec["resumes"] == 1


def test_a_stop_on_the_last_step_keeps_the_last_epochs_summary_on_resume(tmp_path):
    """A deadline (or SIGTERM) on the run's very last optimiser step checkpoints before the epoch's
    summary; the resumed run must still end that epoch (summary, evaluation, probe) exactly as a
    straight run does."""
    from paper_repro.training import trainer as T

    class StopOnLastStep(T.Callbacks):
        def stop_now(self, run):
            if run.st.global_step == run.total_steps:
                T._STOP_REQUESTED = True            # as the SIGTERM handler would
            return False

    data = tiny_data()
    cfg = tiny_config(probe_every=4, probe_images=16, eval_every_epoch=True)
    straight = train(cfg, run_dir=tmp_path / "a", data=data)
    try:
        with pytest.raises(TrainingInterrupted) as ei:
            train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopOnLastStep())
    finally:
        T._STOP_REQUESTED = False
    assert ei.value.step == 16
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    assert [e["epoch"] for e in resumed["epochs"]] == [e["epoch"] for e in straight["epochs"]] == [0, 1]
    assert resumed["epochs"][-1]["train_epoch_usage"] == straight["epochs"][-1]["train_epoch_usage"]
    assert resumed["probes"] == straight["probes"] and resumed["final"] == straight["final"]


def test_bad_data_is_refused_early():
    train_x, eval_x = tiny_data()
    with pytest.raises(ValueError, match="image_size"):
        train(tiny_config(image_size=32), data=(train_x, eval_x))
    with pytest.raises(ValueError, match="fewer than one global batch"):
        train(tiny_config(batch_size=128), data=(train_x, eval_x))


def test_official_augmentation_path_resumes_exactly(tmp_path):
    """augment="official" (CelebA-HQ train transforms, drawn from torch's global RNG batch by batch):
    the checkpointed RNG state makes a resumed run identical to a straight one."""
    from paper_repro.data import make_image_folder
    root = make_image_folder(tmp_path / "celeba", n=60, size=24)
    cfg = tiny_config(dataset="celeba_hq", data_root=str(root), augment="official", epochs=2,
                      batch_size=8, checkpoint_every=3)          # 45 train images: 5 steps/epoch
    a = train(cfg, run_dir=tmp_path / "a")
    train(cfg, run_dir=tmp_path / "b", callbacks=StopAfter(8))
    b = train(cfg, run_dir=tmp_path / "b", resume=True)
    assert a["steps"] == 10 and b["resumes"] == 1
    assert a["epochs"] == b["epochs"] and a["final"] == b["final"]
    ma, mb = (load_checkpoint(tmp_path / d / CHECKPOINT_NAME)["model"] for d in ("a", "b"))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_bf16_autocast_runs_and_stays_finite():
    rec = train(tiny_config(amp="bf16", epochs=1), data=tiny_data())
    assert rec["config"]["amp"] == "bf16"
    assert np.isfinite(rec["epochs"][0]["train_loss"]) and np.isfinite(rec["final"]["psnr"])


def test_eval_every_epoch_records_curves_without_changing_training(tmp_path):
    """Evaluating after each epoch leaves the weights and the final metrics exactly as without it;
    the last epoch's evaluation equals the final one; a killed run resumes to the same curves."""
    data = tiny_data()
    plain = train(tiny_config(quantizer="nsvq"), data=data)
    cfg = tiny_config(quantizer="nsvq", eval_every_epoch=True, checkpoint_every=3)
    curves = train(cfg, run_dir=tmp_path / "a", data=data)
    assert config_hash(cfg) != config_hash(tiny_config(quantizer="nsvq"))   # different record contents
    assert [sorted(e["eval"]) for e in curves["epochs"]] == [sorted(curves["final"])] * 2
    assert curves["epochs"][-1]["eval"] == curves["final"] == plain["final"]
    assert curves["epochs"][0]["eval"] != curves["epochs"][1]["eval"]
    strip = [{k: v for k, v in e.items() if k != "eval"} for e in curves["epochs"]]
    assert strip == plain["epochs"]
    train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopAfter(11))      # killed in epoch 1
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    assert resumed["epochs"] == curves["epochs"] and resumed["final"] == curves["final"]
    with pytest.raises(ValueError, match="eval_every_epoch"):
        tiny_config(eval_every_epoch="yes")


def test_trace_steps_are_1_2_5_per_decade_and_end_at_the_last_step():
    assert trace_steps(128) == [1, 2, 5, 10, 20, 50, 100, 128]
    assert trace_steps(100) == [1, 2, 5, 10, 20, 50, 100]
    assert trace_steps(1) == [1] and trace_steps(0) == []


def test_trace_windows_cover_every_step_and_average_to_the_epoch_loss(tmp_path):
    cfg = tiny_config(epochs=1)
    rec = train(cfg, data=tiny_data())
    tr = rec["trace"]
    assert [p["step"] for p in tr] == trace_steps(rec["steps"]) and len(tr) >= 3
    assert sum(p["window_steps"] for p in tr) == rec["steps"]
    mean = sum(p["loss"] * p["window_steps"] for p in tr) / rec["steps"]
    assert abs(mean - rec["epochs"][0]["train_loss"]) < 1e-9
    assert all(0 < p["window_usage"] <= 1 for p in tr)


def test_trace_survives_a_kill_and_resume_exactly(tmp_path):
    cfg = tiny_config(epochs=2, checkpoint_every=3)
    straight = train(cfg, data=tiny_data())
    train(cfg, run_dir=tmp_path, data=tiny_data(), callbacks=StopAfter(7))
    resumed = train(cfg, run_dir=tmp_path, data=tiny_data(), resume=True)
    assert resumed["resumes"] == 1 and resumed["trace"] == straight["trace"]


def _compare_checkpoints(a_path, b_path):
    a, b = _all_tensors(load_checkpoint(a_path)), _all_tensors(load_checkpoint(b_path))
    assert a.keys() == b.keys()
    for k in a:
        if "/state/" in k and k.split("/")[-1] in ("train_seconds", "resumes", "train_images"):
            continue
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


REPLACEMENT = {"replacement": {"every": 3, "reservoir_size": 40, "threshold": 1.0}}


@pytest.mark.parametrize("images, rows", [(0, 8 * 16), (32, 32 * 16)])
def test_kmeans_init_on_the_first_batch_or_on_the_first_n_training_images(tmp_path, monkeypatch, images, rows):
    """init='kmeans' runs once, before the first optimiser step: on the first batch's latents (8 images
    x 4 x 4 positions) or, with kmeans_images = N, on the untrained encoder's latents of the first N
    training images in dataset order."""
    from paper_repro.quantizers.vq import VQ
    seen = []
    original = VQ.init_kmeans

    def spy(self, latents, iters=None):
        flat = latents if latents.dim() == 2 else latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        seen.append(flat.shape[0])
        return original(self, latents, iters)

    monkeypatch.setattr(VQ, "init_kmeans", spy)
    opts = {"init": "kmeans", **({"kmeans_images": images} if images else {})}
    rec = train(tiny_config(quantizer_options=opts, probe_every=4, probe_images=8), run_dir=tmp_path, data=tiny_data())
    assert seen == [rows]
    # with the latents known before training, the step-0 probe sees the k-means codebook
    assert (rec["probes"][0]["step"] == 0) == bool(images)


def test_kmeans_images_is_checked_and_a_resumed_run_does_not_initialise_again(tmp_path):
    from paper_repro.quantizers import build_quantizer
    with pytest.raises(ValueError, match="needs init='kmeans'"):
        build_quantizer("vq", num_codes=8, code_dim=4, kmeans_images=16)
    with pytest.raises(ValueError, match="kmeans_images must be an int >= 0"):
        build_quantizer("vq", num_codes=8, code_dim=4, init="kmeans", kmeans_images=-1)
    data = tiny_data()
    cfg = tiny_config(quantizer_options={"init": "kmeans", "kmeans_images": 32}, checkpoint_every=2)
    straight = train(cfg, run_dir=tmp_path / "a", data=data)
    train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopAfter(5))
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    _compare_checkpoints(tmp_path / "a" / CHECKPOINT_NAME, tmp_path / "b" / CHECKPOINT_NAME)
    assert straight["final"] == resumed["final"] and straight["trace"] == resumed["trace"]
    with pytest.raises(ValueError, match="training set has 64 images"):
        train(tiny_config(quantizer_options={"init": "kmeans", "kmeans_images": 65}), run_dir=tmp_path / "c", data=data)


@pytest.mark.parametrize("epochs, max_steps, expected", [(3, None, 2), (3, 16, 1), (1, None, 0)])
def test_epoch_end_replacement_is_skipped_after_the_last_epoch(tmp_path, monkeypatch, epochs, max_steps, expected):
    """No training step follows the last epoch (or the step cap at an epoch's end: 16 steps = 2 epochs
    of 8 here), so a replacement there would only place codes for the final evaluation to select."""
    from paper_repro.quantizers.base import BaseQuantizer
    calls = []
    original = BaseQuantizer.replace_dead_codes

    def spy(self):
        calls.append(self.replacer.every)
        return original(self)

    monkeypatch.setattr(BaseQuantizer, "replace_dead_codes", spy)
    cfg = tiny_config(quantizer_options={"replacement": {"every": "epoch", "reservoir_size": 40, "threshold": 1.0}},
                      epochs=epochs, max_steps=max_steps)
    rec = train(cfg, run_dir=tmp_path, data=tiny_data())
    assert len(calls) == expected and len(rec["epochs"]) == (2 if max_steps else epochs)


@pytest.mark.parametrize("kill_at", [4, 11])
@pytest.mark.parametrize("quantizer", ["vq", "ema", "fc", "simvq", "nsvq", "transvq"])
def test_resume_with_dead_code_replacement_is_bit_exact(tmp_path, quantizer, kill_at):
    """The reservoir, its fill level and pointer, the step counter and a pending replacement are
    checkpointed: a run killed at any point and resumed ends bit for bit like the straight run
    (weights, optimiser state, trace, history, final metrics)."""
    data = tiny_data()
    opts = dict(REPLACEMENT, **({"model_dim": 16} if quantizer == "transvq" else {}))
    cfg = tiny_config(quantizer=quantizer, quantizer_options=opts, checkpoint_every=2)
    straight = train(cfg, run_dir=tmp_path / "a", data=data)
    train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopAfter(kill_at))
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    assert resumed["resumes"] == 1
    _compare_checkpoints(tmp_path / "a" / CHECKPOINT_NAME, tmp_path / "b" / CHECKPOINT_NAME)
    assert straight["epochs"] == resumed["epochs"] and straight["trace"] == resumed["trace"]
    assert straight["final"] == resumed["final"]


@pytest.mark.parametrize("quantizer, options", [
    ("nsvq", {"flavor": "official"}), ("nsvq", {"kernel_in_ste": True}),
    ("ema", {"decay": 0.9995, "dead_code_threshold": 1.0, "rotation_trick": True}),
    ("transvq", {"mapper": "mlp", "model_dim": 16}), ("transvq", {"position_embedding": False, "model_dim": 16}),
    ("fc", {"lookup_dim": 4}), ("simvq", {"bias": False}),
], ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()))
def test_resume_is_bit_exact_with_each_method_option(tmp_path, quantizer, options):
    data = tiny_data()
    cfg = tiny_config(quantizer=quantizer, quantizer_options=options, checkpoint_every=3)
    straight = train(cfg, run_dir=tmp_path / "a", data=data)
    train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopAfter(10))
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    _compare_checkpoints(tmp_path / "a" / CHECKPOINT_NAME, tmp_path / "b" / CHECKPOINT_NAME)
    assert straight["final"] == resumed["final"] and straight["trace"] == resumed["trace"]


def test_channels_last_is_the_same_maths_within_the_float_kernel_tolerance():
    """channels_last (NHWC convolutions, the faster CPU path of the sweeps) changes only the float
    kernels: the trace agrees with the plain layout within the reproduction test's tolerances,
    and the config hash is the same."""
    from paper_repro.experiments import reproduce
    data = tiny_data()
    plain = train(tiny_config(), data=data)
    nhwc = train(tiny_config(channels_last=True), data=data)
    assert plain["config_hash"] == nhwc["config_hash"]
    dev = reproduce.deviations(nhwc, plain)
    assert len(dev) >= 5 and dev["within"].all(), reproduce.describe_failures(dev, "channels_last")


def test_warmup_schedule_is_linear_then_the_papers_per_epoch_decay():
    from paper_repro.training.trainer import learning_rate
    cfg = tiny_config(lr=1e-3, lr_gamma=0.5, warmup_steps=4)
    assert [learning_rate(cfg, s, 0) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert learning_rate(cfg, 9, 1) == pytest.approx(5e-4)
    assert learning_rate(cfg, 2, 2) == pytest.approx(1e-3 * 0.25 * 0.75)   # warm-up inside a later epoch too
    plain = tiny_config(lr=1e-3, lr_gamma=0.5)
    assert [learning_rate(plain, s, e) for s, e in ((0, 0), (8, 1), (17, 2))] == pytest.approx([1e-3, 5e-4, 2.5e-4])


def test_trainer_steps_with_the_warmup_learning_rate_and_resumes_exactly(tmp_path, monkeypatch):
    from paper_repro.training.trainer import learning_rate
    data = tiny_data()                            # 8 steps per epoch, 2 epochs
    cfg = tiny_config(lr_gamma=0.5, warmup_steps=10, checkpoint_every=3)
    used = []
    original = torch.optim.Adam.step

    def spy(self, *a, **k):
        used.append(self.param_groups[0]["lr"])
        return original(self, *a, **k)
    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    straight = train(cfg, run_dir=tmp_path / "a", data=data)
    assert used == pytest.approx([learning_rate(cfg, s, s // 8) for s in range(16)])
    assert used[0] == pytest.approx(5e-5) and used[12] == pytest.approx(2.5e-4)
    train(cfg, run_dir=tmp_path / "b", data=data, callbacks=StopAfter(7))   # killed inside the warm-up
    resumed = train(cfg, run_dir=tmp_path / "b", data=data, resume=True)
    assert resumed["resumes"] == 1 and resumed["final"] == straight["final"]
    assert resumed["trace"] == straight["trace"]
    # and the warm-up changes training (it is not a no-op)
    plain = train(cfg.replace(warmup_steps=0), data=data)
    assert plain["final"]["eval_mse"] != straight["final"]["eval_mse"]
