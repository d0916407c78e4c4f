"""Usage / perplexity by hand; PSNR and SSIM against scikit-image."""
import math

import numpy as np
import pytest
import torch
from skimage.data import astronaut
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from paper_repro.metrics import (
    counts_from_indices, dead_codes, gaussian_window, perplexity_from_counts, psnr, ssim,
    usage_from_counts, usage_from_indices,
)


def test_usage_perplexity_dead_codes_by_hand():
    counts = torch.tensor([3, 0, 1, 0])
    assert usage_from_counts(counts) == 0.5
    p = np.array([0.75, 0.25])
    assert perplexity_from_counts(counts) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert dead_codes(counts).tolist() == [1, 3]
    assert dead_codes(counts, threshold=2).tolist() == [1, 2, 3]
    assert perplexity_from_counts(torch.full((16,), 5)) == pytest.approx(16)  # uniform -> K
    assert perplexity_from_counts(torch.tensor([0, 9, 0])) == pytest.approx(1)  # one code -> 1
    idx = torch.tensor([[0, 2], [2, 2]])
    assert counts_from_indices(idx, 4).tolist() == [1, 0, 3, 0]
    assert usage_from_indices(idx, 4) == 0.5


def test_usage_bad_input():
    with pytest.raises(ValueError, match="out of range"):
        counts_from_indices(torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match="non-negative"):
        usage_from_counts(torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="1-D"):
        usage_from_counts(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="at least one"):
        perplexity_from_counts(torch.zeros(3))


def natural_pair():
    img = resize(astronaut(), (64, 64), anti_aliasing=True)  # float64 in [0, 1], (64, 64, 3)
    rng = np.random.default_rng(0)
    noisy = np.clip(img + rng.normal(0, 0.08, img.shape), 0, 1)
    return img.transpose(2, 0, 1), noisy.transpose(2, 0, 1)


def test_psnr_matches_skimage():
    a, b = natural_pair()
    ours = psnr(torch.from_numpy(a)[None].float(), torch.from_numpy(b)[None].float())
    assert ours.item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-3)
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(psnr(x, x), torch.full((2,), 100.0))     # capped: a perfect image does not make the mean inf


def test_gaussian_window_is_scipy_11_taps():
    w = gaussian_window(1.5)
    assert w.numel() == 11 and w.sum().item() == pytest.approx(1.0)
    from scipy.ndimage import gaussian_filter1d
    impulse = np.zeros(21)
    impulse[10] = 1
    assert np.allclose(gaussian_filter1d(impulse, 1.5, truncate=3.5)[5:16], w.numpy())


@pytest.mark.parametrize("kind", ["natural", "random", "blur"])
def test_ssim_matches_skimage_gaussian(kind):
    rng = np.random.default_rng(1)
    if kind == "natural":
        a, b = natural_pair()
    elif kind == "random":
        a, b = rng.random((3, 40, 48)), rng.random((3, 40, 48))
    else:
        from scipy.ndimage import uniform_filter
        a = natural_pair()[0]
        b = uniform_filter(a, size=(1, 3, 3))
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=1, channel_axis=0)
    ours = ssim(torch.from_numpy(a)[None].float(), torch.from_numpy(b)[None].float())
    assert ours.item() == pytest.approx(ref, abs=1e-3)
    assert abs(ours.item() - ref) < 1e-5  # in fact far tighter than the required 1e-3


def test_ssim_batched_identity_and_errors():
    a = torch.rand(3, 3, 16, 16)
    b = torch.rand(3, 3, 16, 16)
    s = ssim(a, b)
    assert s.shape == (3,)
    assert torch.allclose(ssim(a, a), torch.ones(3))
    assert torch.allclose(s[1], ssim(a[1:2], b[1:2])[0])  # per image, independent of batch
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="mismatch"):
        ssim(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError, match="NaN"):
        psnr(torch.full((1, 3, 4, 4), float("nan")), torch.rand(1, 3, 4, 4))
