"""Quantizer diagnostics (the training probes' codebook measures) against brute-force references."""
import math

import pytest
import torch
import torch.nn.functional as F

from paper_repro.quantizers import build_quantizer


def _dense_rbf_mass(z, cb, scale, threshold=0.1):
    d = torch.cdist(z.double(), cb.double()) ** 2
    w = torch.exp(-d / scale)
    w[torch.arange(len(z)), d.argmin(1)] = 0.0                # the winner is not "pulled"
    return float((w > threshold).sum(1).double().mean())


def test_nsvq_kernel_mass_counts_codes_within_the_kernels_reach():
    torch.manual_seed(0)
    q = build_quantizer("nsvq", num_codes=64, code_dim=4, kernel_width=0.5)
    q.embedding.data.normal_()
    z = torch.randn(300, 4)
    assert q.kernel_mass(z) == pytest.approx(_dense_rbf_mass(z, q.codebook, 0.5))
    # exact on a hand-built case: codes at distance^2 0, 1, 4 from the one latent, 2 sigma^2 = 1:
    # weights (winner), e^-1 = 0.37 > 0.1, e^-4 = 0.018 < 0.1 -> one code pulled
    q2 = build_quantizer("nsvq", num_codes=3, code_dim=1, kernel_width=1.0)
    q2.embedding.data = torch.tensor([[0.0], [1.0], [2.0]])
    assert q2.kernel_mass(torch.zeros(1, 1)) == 1.0
    q2.on_epoch_end(0)                  # 2 sigma^2 = 0.9: e^(-1/0.9) = 0.33 still counts
    assert q2.kernel_mass(torch.zeros(1, 1)) == 1.0
    assert q2.diagnostics(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long))["kernel_scale"] == pytest.approx(0.9)


def test_nsvq_official_kernel_mass_uses_its_soft_weights():
    torch.manual_seed(1)
    q = build_quantizer("nsvq", num_codes=32, code_dim=3, flavor="official")
    q.embedding.data.normal_(std=0.3)
    z = torch.randn(50, 3) * 0.3
    d = torch.cdist(z.double(), q.codebook.double()) ** 2
    w = (0.01 * 32 * torch.softmax(-d / 1.0, 1)).clamp(0, 1)
    w[torch.arange(50), d.argmin(1)] = 0.0
    assert q.kernel_mass(z) == pytest.approx(float((w > 0.1).sum(1).double().mean()))


def test_relative_kernel_width_is_set_once_from_the_first_batch():
    torch.manual_seed(2)
    q = build_quantizer("nsvq", num_codes=16, code_dim=4, kernel_width_rule="relative", kernel_width=2.0)
    assert math.isnan(q.diagnostics(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))["kernel_mass"])
    z = torch.randn(2, 4, 3, 3) * 5
    q.train()
    zf = z.permute(0, 2, 3, 1).reshape(-1, 4)
    expected = float((torch.cdist(zf.double(), q.codebook.detach().double()) ** 2).min(1).values.median())
    q(z)
    assert float(q.width_ref) == pytest.approx(expected, rel=1e-5)
    assert q.current_scale == pytest.approx(2.0 * expected, rel=1e-5)
    q(z * 10)                               # not re-measured
    assert float(q.width_ref) == pytest.approx(expected, rel=1e-5)
    q.on_epoch_end(0)
    assert q.current_scale == pytest.approx(2.0 * expected * 0.9, rel=1e-5)
    # the reference travels with the state dict (exact resume); the default rule adds no key
    assert "width_ref" in q.state_dict() and "width_ref" not in build_quantizer("nsvq", num_codes=4, code_dim=2).state_dict()
    with pytest.raises(ValueError, match="kernel_width_rule"):
        build_quantizer("nsvq", num_codes=4, code_dim=2, kernel_width_rule="relative", flavor="official")
    with pytest.raises(ValueError, match="kernel_width_rule"):
        build_quantizer("nsvq", num_codes=4, code_dim=2, kernel_width_rule="median")


def test_transvq_attention_singular_values_equal_the_dense_matrixs():
    torch.manual_seed(3)
    q = build_quantizer("transvq", num_codes=48, code_dim=8, model_dim=16, position_embedding=True)
    m = q.mapper
    with torch.no_grad():
        x = m.ln1(m.inp(q.base) + m.pos.weight)
        phq, phk = F.elu(m.attn.q(x)) + 1, F.elu(m.attn.k(x)) + 1
        a = (phq @ phk.t()) / (phq @ phk.sum(0) + m.attn.eps).unsqueeze(1)
    assert torch.allclose(a.sum(1), torch.ones(48), rtol=1e-5)      # rows sum to 1
    dense = torch.linalg.svdvals(a.double())[:16]
    assert torch.allclose(m.attn.singular_values(x), dense, rtol=1e-5, atol=1e-7)
    assert 1.0 <= q.attention_rank() <= 16.0
    assert math.isnan(build_quantizer("transvq", num_codes=8, code_dim=4, mapper="mlp").attention_rank())


def test_base_diagnostics_values():
    q = build_quantizer("vq", num_codes=2, code_dim=2)
    q.embedding.data = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    d = q.diagnostics(z, torch.tensor([0, 1]))
    assert d["code_spread"] == pytest.approx(1.0) and d["code_rank"] == pytest.approx(1.0)
    assert d["quantization_rms"] == pytest.approx(1.0) and d["code_stacked"] == 0.0
    q.embedding.data = torch.tensor([[1.0, 0.0], [1.0, 1e-5]])      # 1e-5 apart, latents' spread sqrt(2)
    assert q.diagnostics(z, torch.tensor([0, 0]))["code_stacked"] == 1.0


def test_transvq_defaults_to_the_papers_map_and_scales_the_codebook_on_request():
    torch.manual_seed(0)
    a = build_quantizer("transvq", num_codes=16, code_dim=4, model_dim=8)
    assert a.mapper.pos is None                                   # Eq. 21-23: the base codes alone
    torch.manual_seed(0)
    b = build_quantizer("transvq", num_codes=16, code_dim=4, model_dim=8, codebook_scale=0.125)
    assert torch.equal(b.base, a.base)
    assert torch.allclose(b.codebook, 0.125 * a.codebook)
    assert sum(p.numel() for p in b.parameters()) == sum(p.numel() for p in a.parameters())
    assert build_quantizer("transvq", num_codes=16, code_dim=4, model_dim=8, position_embedding=True).mapper.pos.weight.shape == (16, 8)
    for bad in (0, -1.0, True, "x"):
        with pytest.raises(ValueError, match="codebook_scale"):
            build_quantizer("transvq", num_codes=4, code_dim=2, codebook_scale=bad)
