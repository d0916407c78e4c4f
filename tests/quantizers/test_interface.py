"""Interface, errors, search exactness, lookup round trips, usage statistics."""
import math

import pytest
import torch

from paper_repro.quantizers import registered_quantizers
from paper_repro.quantizers import (
    CodeUsage, QuantizerOutput, available_quantizers, build_quantizer, nearest_code,
)
from paper_repro.quantizers.search import DEFAULT_CHUNK_BYTES, distance_chunks, rows_per_chunk

METHODS = registered_quantizers()     # every registered method (registration order)


def small(name, **kw):
    extra = {"model_dim": 16} if name == "transvq" else {}
    extra.update(kw)
    return build_quantizer(name, num_codes=24, code_dim=6, **extra)


def test_registry_lists_all_methods():
    assert set(METHODS) == set(available_quantizers())
    assert METHODS[:6] == ["vq", "ema", "fc", "simvq", "nsvq", "transvq"]     # the paper's six, in its order


@pytest.mark.parametrize("bad,match", [
    (dict(name="nope"), "unknown quantizer 'nope'"),
    (dict(num_codes=0), "num_codes"),
    (dict(code_dim=0), "code_dim"),
    (dict(num_codes=2.5), "num_codes"),
    (dict(foo=1), r"unknown option\(s\) \['foo'\]"),
    (dict(search_precision="fp8"), "precision"),
])
def test_clear_construction_errors(bad, match):
    kw = dict(name="vq", num_codes=8, code_dim=4)
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        build_quantizer(kw.pop("name"), **kw)


@pytest.mark.parametrize("name", METHODS)
def test_bad_inputs_raise(name):
    q = small(name)
    with pytest.raises(ValueError, match="shape"):
        q(torch.randn(2, 6, 3))
    with pytest.raises(ValueError, match="code_dim"):
        q(torch.randn(2, 5, 3, 3))
    z = torch.randn(2, 6, 3, 3)
    z[0, 1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        q(z)
    z[0, 1, 2, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        q(z)
    with pytest.raises(ValueError, match="floating"):
        q(torch.ones(2, 6, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        q.lookup(torch.full((1, 2, 2), 24, dtype=torch.long))


@pytest.mark.parametrize("name", METHODS)
def test_eval_output_equals_lookup_exactly(name):
    torch.manual_seed(0)
    q = small(name)
    opt = torch.optim.SGD([p for p in q.parameters()], lr=0.05) if list(q.parameters()) else None
    for _ in range(3):  # move away from the initial state first
        z = torch.randn(4, 6, 5, 5, requires_grad=True)
        out = q(z)
        (out.loss + out.quantized.square().mean()).backward()
        if opt:
            opt.step()
            opt.zero_grad()
    q.eval()
    z = torch.randn(4, 6, 5, 5)
    out = q(z)
    assert isinstance(out, QuantizerOutput)
    assert out.indices.dtype == torch.long and out.indices.shape == (4, 5, 5)
    assert out.quantized.shape == (4, 6, 5, 5)
    assert torch.equal(out.quantized, q.lookup(out.indices))
    assert q.codebook.shape == (24, 6)
    if name != "fc":  # fc searches in its projected, normalised space
        zf = z.permute(0, 2, 3, 1).reshape(-1, 6)
        brute = torch.cdist(zf, q.codebook.detach()).argmin(1)
        assert (brute == out.indices.flatten()).float().mean() > 0.99
    assert all(isinstance(v, float) for v in out.stats.values())


@pytest.mark.parametrize("name", METHODS)
def test_config_records_resolved_options(name):
    q = small(name, search_precision="bf16")
    assert q.config["name"] == name and q.config["num_codes"] == 24 and q.config["code_dim"] == 6
    assert q.config["search_precision"] == "bf16"
    assert "replacement" in q.config and "track_usage" in q.config


def test_nsvq_config_resolves_flavour_defaults():
    assert small("nsvq").config["ste_d"] == "paper"
    q = small("nsvq", flavor="official")
    assert q.config["ste_d"] == "official" and q.config["kernel_coef"] == 1.0


def test_chunked_search_equals_unchunked():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1000, 16, generator=g)
    c = torch.randn(300, 16, generator=g)
    i_full, d_full = nearest_code(z, c, return_distances=True)
    i_chunk, d_chunk = nearest_code(z, c, chunk_bytes=4 * 300 * 7, return_distances=True)  # 7 rows
    assert torch.equal(i_full, i_chunk)
    torch.testing.assert_close(d_full, d_chunk, rtol=1e-6, atol=1e-6)
    # against brute force (independent of the expansion)
    brute = ((z[:, None, :] - c[None]) ** 2).sum(-1)
    torch.testing.assert_close(d_full, brute.min(1).values, rtol=1e-4, atol=1e-4)
    assert (i_full == brute.argmin(1)).float().mean() > 0.999
    blocks = list(distance_chunks(z, c, chunk_bytes=4 * 300 * 7))
    assert len(blocks) == math.ceil(1000 / 7) and max(b[2].shape[0] for b in blocks) == 7


def test_chunk_budget_for_huge_codebooks():
    rows = rows_per_chunk(262_144, DEFAULT_CHUNK_BYTES)
    assert rows >= 1 and rows * 262_144 * 4 <= DEFAULT_CHUNK_BYTES


def test_low_precision_search_is_close():
    g = torch.Generator().manual_seed(2)
    z, c = torch.randn(200, 8, generator=g), torch.randn(50, 8, generator=g)
    i32, d32 = nearest_code(z, c, return_distances=True)
    i16, d16 = nearest_code(z, c, precision="bf16", return_distances=True)
    assert (i32 == i16).float().mean() > 0.8
    torch.testing.assert_close(d16, d32, rtol=0.05, atol=0.05)


def test_code_usage_counts_reset_and_summaries():
    u = CodeUsage(5)
    u.update(torch.tensor([[0, 1], [1, 4]]))
    u.update(torch.tensor([4, 4, 4]))
    assert u.counts.tolist() == [1, 2, 0, 0, 4]
    assert u.fraction_used() == pytest.approx(3 / 5)
    assert u.dead_codes().tolist() == [2, 3]
    p = torch.tensor([1, 2, 4], dtype=torch.float64) / 7.0
    assert u.perplexity() == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-9)
    u.sync()  # no process group: moves local into synced without changing the total
    u.sync()
    assert u.counts.tolist() == [1, 2, 0, 0, 4]
    u.reset()
    assert u.total == 0 and u.perplexity() == 0.0
    u.update(torch.arange(5))
    assert u.perplexity() == pytest.approx(5.0)


def test_usage_counted_in_training_and_when_tracking():
    q = small("vq")
    z = torch.randn(2, 6, 4, 4)
    out = q(z)
    assert q.usage.counts.tolist() == torch.bincount(out.indices.flatten(), minlength=24).tolist()
    q.eval()
    q(z)
    assert q.usage.total == 32  # eval does not count by default
    q.track_usage = True
    q(z)
    assert q.usage.total == 64
    q.usage.reset()
    assert q.usage.total == 0


@pytest.mark.parametrize("name", ["vq", "nsvq", "transvq"])
def test_autocast_does_not_lower_quantizer_precision(name):
    torch.manual_seed(0)
    q = small(name)
    z = torch.randn(2, 6, 3, 3)
    ref = q(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z)
    assert out.quantized.dtype == torch.float32
    assert torch.equal(out.indices, ref.indices)
    torch.testing.assert_close(out.quantized, ref.quantized, rtol=0, atol=0)


@pytest.mark.parametrize("name", METHODS)
def test_options_are_one_frozen_dataclass_validated_once(name):
    import dataclasses

    q = small(name)
    assert dataclasses.is_dataclass(q.options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.options.search_precision = "bf16"
    assert q.config == {"name": name, "num_codes": 24, "code_dim": 6, **dataclasses.asdict(q.options)}
    fields = {f.name for f in dataclasses.fields(q.options)}
    if "beta" in fields:                     # every method with a commitment weight checks it
        with pytest.raises(ValueError, match=f"'{name}' quantizer: beta must be a number >= 0"):
            small(name, beta=-1.0)
        with pytest.raises(ValueError, match="beta"):
            small(name, beta="0.25")
    with pytest.raises(ValueError, match=r"option 'search_precision'|precision"):
        small(name, search_precision="fp8")
