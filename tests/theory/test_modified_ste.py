"""Supp. 9: the modified STE (Eq. A21) gives the codebook the delay-free term of Eq. A19."""
import pytest
import torch

from paper_repro.theory import modified_ste as ms


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(30, 3, dtype=torch.float64, generator=g)
    c = torch.randn(5, 3, dtype=torch.float64, generator=g)
    u = torch.randn(30, 3, dtype=torch.float64, generator=g)
    return z, c, u


@pytest.mark.parametrize("modified", [True, False])
def test_autograd_equals_closed_form(modified):
    z, c, u = _data()
    d = 30.0
    torch.testing.assert_close(ms.codebook_gradient_autograd(z, c, u, d, modified),
                               ms.codebook_gradient_closed_form(z, c, u, d, modified))


def test_modified_minus_plain_is_two_over_d_times_upstream_and_equals_A19():
    z, c, u = _data(1)
    d = 30.0
    diff = ms.codebook_gradient_autograd(z, c, u, d, True) - ms.codebook_gradient_autograd(z, c, u, d, False)
    q = torch.cdist(z, c).argmin(1)
    torch.testing.assert_close(diff, torch.zeros_like(c).index_add_(0, q, (2 / d) * u))
    # Eq. A19 with lambda = 1: gradient of (1/d)||sg(E - dL/dE) - c||^2 summed over n
    cc = c.clone().requires_grad_(True)
    target = (z - u).detach()
    a19 = torch.autograd.grad((((target - cc[q]) ** 2).sum() / d), cc)[0]
    torch.testing.assert_close(ms.codebook_gradient_autograd(z, c, u, d, True), a19)


def test_forward_value_and_encoder_gradient_unchanged():
    z, c, u = _data(2)
    zz = z.clone().requires_grad_(True)
    q = torch.cdist(z, c).argmin(1)
    out = ms.modified_ste_output(zz, c[q], 7.0)
    torch.testing.assert_close(out, c[q])
    (g,) = torch.autograd.grad((u * out).sum(), zz)
    torch.testing.assert_close(g, u)


@pytest.mark.parametrize("ste_d", ["paper", "official"])
def test_project_quantizer_matches_closed_form(ste_d):
    pytest.importorskip("paper_repro.quantizers")
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 4, 3, 3, dtype=torch.float64, generator=g)
    up = torch.randn(2, 4, 3, 3, dtype=torch.float64, generator=g)
    grad, cb, zf, uf = ms.project_quantizer_gradient(z, 5, up, ste_d=ste_d)
    n, dim = zf.shape
    d_ste = n if ste_d == "paper" else n * dim
    q = torch.cdist(zf, cb).argmin(1)
    # the project's codebook loss is mse (mean over N*D elements); the STE term uses d_ste
    expected = torch.zeros_like(cb).index_add_(0, q, (2 / (n * dim)) * (cb[q] - zf) + (2 / d_ste) * uf)
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-7)
