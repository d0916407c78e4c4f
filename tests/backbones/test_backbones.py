"""Backbones: closed-form parameter counts (Table 1 / Table 5), receptive field, shapes, mappings."""
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from paper_repro.backbones import (
    ResidualLayer, Table1Decoder, Table1Encoder, TamingDecoder, TamingEncoder, VQAutoencoder,
    build_autoencoder, build_backbone,
)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv(cin, cout, k, bias=True):  # weights + bias of a kxk conv (or transposed conv)
    return cin * cout * k * k + (cout if bias else 0)


def test_table1_parameter_count_matches_paper_closed_form():
    # Table 1 with D = 64, C = 3, width 1: counted by hand, layer by layer.
    res = conv(256, 256, 3, bias=False) + conv(256, 256, 1, bias=False)
    enc = conv(3, 128, 4) + conv(128, 256, 4) + conv(256, 256, 3) + 6 * res + conv(256, 64, 1)
    dec = conv(64, 256, 3) + 6 * res + conv(256, 128, 4) + conv(128, 3, 4)
    assert enc == 5_069_504 and dec == 4_610_435  # the same sums written out as numbers
    e, d = build_backbone("table1", 64)
    assert n_params(e) == enc
    assert n_params(d) == dec


@pytest.mark.parametrize("width,c1,c2", [(0.25, 32, 64), (0.03, 8, 8)])
def test_table1_width_scales_channels(width, c1, c2):
    e, d = build_backbone("table1", 16, width=width)
    assert e.channels == (c1, c2) and d.channels == (c1, c2)
    res = conv(c2, c2, 3, False) + conv(c2, c2, 1, False)
    assert n_params(e) == conv(3, c1, 4) + conv(c1, c2, 4) + conv(c2, c2, 3) + 6 * res + conv(c2, 16, 1)


def test_taming_parameter_count_closed_form():
    def block(c):  # two 3x3 convs + two GroupNorms (weight, bias)
        return 2 * conv(c, c, 3) + 2 * 2 * c
    for factor in (4, 8):
        e, d = build_backbone("taming", 3, factor=factor)
        first = conv(3, 128, 3) if factor == 4 else conv(3, 128, 4)
        enc = (first + 2 * block(128) + conv(128, 256, 4) + 2 * block(256) + conv(256, 512, 4)
               + 2 * block(512) + conv(512, 3, 3) + conv(3, 3, 1))
        dec = (conv(3, 3, 1) + conv(3, 512, 3) + 2 * block(512) + conv(512, 256, 4) + 2 * block(256)
               + conv(256, 128, 4) + 2 * block(128) + conv(128, 3, 3)
               + (conv(128, 128, 4) if factor == 8 else 0))
        assert n_params(e) == enc and n_params(d) == dec


@pytest.mark.parametrize("name,opts,size,grid", [
    ("table1", {}, 32, 8), ("table1", {}, 64, 16),
    ("taming", {"factor": 4}, 32, 8), ("taming", {"factor": 8}, 32, 4),
])
def test_shapes_encoder_decoder_consistent(name, opts, size, grid):
    torch.manual_seed(0)
    e, d = build_backbone(name, 5, width=0.0625, **opts)
    x = torch.rand(2, 3, size, size)
    z = e(x)
    assert z.shape == (2, 5, grid, grid)
    y = d(z)
    assert y.shape == x.shape
    assert y.abs().max() < 1  # Tanh output


def test_table1_receptive_field_is_66_pixels():
    # RF by hand: conv4 s2 -> 4 (jump 2); conv4 s2 -> 4 + 3*2 = 10 (jump 4); conv3 -> 10 + 2*4 = 18;
    # 6 residual 3x3 convs -> 18 + 6*2*4 = 66; 1x1 convs add nothing.
    torch.manual_seed(0)
    e = Table1Encoder(code_dim=4, width=0.0625).double()
    x = torch.rand(1, 3, 160, 160, dtype=torch.double, requires_grad=True)
    z = e(x)
    z[0, :, 20, 20].sum().backward()
    support = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    extent = support.max(0).values - support.min(0).values + 1
    assert extent.tolist() == [66, 66]


def test_residual_layer_identity_when_last_conv_zero_and_gradient_closed_form():
    layer = ResidualLayer(6)
    nn.init.zeros_(layer.conv1.weight)
    x = torch.randn(2, 6, 5, 5, requires_grad=True)
    y = layer(x)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # identity Jacobian
    assert layer.conv3.bias is None and layer.conv1.bias is None


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet", 8)
    with pytest.raises(ValueError, match="factor"):
        build_backbone("taming", 3, factor=16)
    with pytest.raises(ValueError, match="width"):
        build_backbone("table1", 8, width=0)
    with pytest.raises(ValueError, match="bad options"):
        build_backbone("table1", 8, factor=4)
    e, _ = build_backbone("table1", 8, width=0.0625)
    with pytest.raises(ValueError, match="multiples of 4"):
        e(torch.rand(1, 3, 30, 30))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        e(torch.rand(1, 1, 32, 32))


# --- VQAutoencoder with a stand-in quantizer of the paper_repro.quantizers interface ----------
@dataclass
class _Out:
    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    stats: dict = field(default_factory=dict)


class NearestStub(nn.Module):
    """Plain nearest-code VQ with straight-through gradient (same interface as the real quantizers)."""

    def __init__(self, num_codes, code_dim):
        super().__init__()
        self.num_codes, self.code_dim = num_codes, code_dim
        self.codebook = nn.Parameter(torch.randn(num_codes, code_dim))

    def forward(self, z):
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        idx = torch.cdist(flat, self.codebook).argmin(1)
        q = self.codebook[idx]
        loss = ((q - flat.detach()) ** 2).mean()
        q = flat + (q - flat).detach()
        return _Out(q.reshape(b, h, w, d).permute(0, 3, 1, 2), idx.reshape(b, h, w), loss)

    def lookup(self, indices):
        return self.codebook[indices].permute(0, 3, 1, 2)


def test_vq_autoencoder_symmetric_and_official_mappings():
    torch.manual_seed(0)
    e, d = build_backbone("table1", 4, width=0.0625)
    q = NearestStub(8, 4)
    x = torch.rand(2, 3, 16, 16)
    sym = VQAutoencoder(e, q, d)
    off = VQAutoencoder(e, q, d, input_mapping="official")
    out = sym(x)
    assert set(out) >= {"recon", "quantizer_output", "z"}
    assert torch.allclose(out["z"], e(2 * x - 1))
    qo = out["quantizer_output"]
    assert torch.allclose(out["recon"], (d(qo.quantized) + 1) / 2)
    assert out["recon"].min() >= 0 and out["recon"].max() <= 1
    # decoding the indices gives the same reconstruction as the forward pass
    assert torch.allclose(sym.decode_indices(qo.indices), out["recon"], atol=1e-6)
    out_off = off(x)
    assert torch.allclose(out_off["z"], e(x))
    assert torch.allclose(out_off["recon"], d(out_off["quantizer_output"].quantized))
    # gradients reach the encoder through the straight-through estimator
    loss = ((out["recon"] - x) ** 2).mean() + qo.loss
    loss.backward()
    assert e.net[0].weight.grad is not None and e.net[0].weight.grad.abs().sum() > 0
    assert q.codebook.grad is not None


def test_vq_autoencoder_input_checks_and_builder():
    e, d = build_backbone("table1", 4, width=0.0625)
    with pytest.raises(ValueError, match="input_mapping"):
        VQAutoencoder(e, NearestStub(8, 4), d, input_mapping="centered")
    m = build_autoencoder("table1", NearestStub(8, 4), width=0.0625)
    with pytest.raises(ValueError, match="NaN"):
        m(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="float"):
        m(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    assert m(torch.rand(1, 3, 8, 8))["recon"].shape == (1, 3, 8, 8)


@pytest.mark.parametrize("qname", ["vq", "transvq"])
def test_vq_autoencoder_with_real_quantizer_and_usage_counts(qname):
    from paper_repro.metrics import counts_from_indices, usage_from_counts
    from paper_repro.quantizers import build_quantizer

    torch.manual_seed(0)
    q = build_quantizer(qname, num_codes=16, code_dim=8)
    model = build_autoencoder("table1", q, width=0.0625).train()
    x = torch.rand(3, 3, 16, 16)
    out = model(x)
    qo = out["quantizer_output"]
    assert out["recon"].shape == x.shape and qo.indices.shape == (3, 4, 4)
    assert torch.allclose(model.decode_indices(qo.indices), out["recon"], atol=1e-5)
    counts = counts_from_indices(qo.indices, 16)
    assert torch.equal(q.usage.counts.cpu(), counts)  # the quantizer's CodeUsage saw the same indices
    assert usage_from_counts(counts) == pytest.approx(len(qo.indices.unique()) / 16)
    (((out["recon"] - x) ** 2).mean() + qo.loss).backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0
