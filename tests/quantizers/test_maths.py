"""Maths of the quantizers: gradients against closed forms, fixed points, independent references."""
import pytest
import torch

from paper_repro.quantizers import build_quantizer
from paper_repro.quantizers.ema import rotation_trick


def flat(z):
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def blobs(n_per=100, d=2, centres=((0.0, 0.0), (4.0, 0.0), (0.0, 4.0)), std=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    cs = torch.tensor(centres)[:, :d]
    x = torch.cat([c + std * torch.randn(n_per, d, generator=g) for c in cs])
    return x[torch.randperm(len(x), generator=g)], cs


def lloyd(x, c, iters=100):
    """Independent k-means (dense distances) for the fixed-point test."""
    c = c.clone()
    for _ in range(iters):
        a = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        c = torch.stack([x[a == k].mean(0) for k in range(len(c))])
    return c


def as_latents(x):  # (N, D) -> (1, D, 1, N)
    return x.t().reshape(1, x.shape[1], 1, x.shape[0]).contiguous()


# ------------------------------------------------------------------ vq
def test_vq_codebook_gradient_closed_form():
    torch.manual_seed(0)
    q = build_quantizer("vq", num_codes=10, code_dim=3, init="uniform")
    q.embedding.data.normal_()
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = q(z)
    out.loss.backward()
    zf, idx = flat(z).detach(), out.indices.flatten()
    n, d = zf.shape
    expected = torch.zeros(10, 3)
    expected.index_add_(0, idx, 2.0 / (n * d) * (q.embedding.detach()[idx] - zf))
    torch.testing.assert_close(q.embedding.grad, expected)
    # encoder: only the commitment gradient (no upstream here)
    torch.testing.assert_close(flat(z.grad), 0.25 * 2.0 / (n * d) * (zf - q.embedding.detach()[idx]))


def test_online_vq_stays_at_kmeans_fixed_point_supp8():
    x, cs = blobs()
    star = lloyd(x, cs + 0.3)
    q = build_quantizer("vq", num_codes=3, code_dim=2, beta=0.0)
    q.embedding.data.copy_(star)
    opt = torch.optim.SGD(q.parameters(), lr=1.0)
    for _ in range(20):  # full-batch steps: the gradient is exactly zero up to rounding
        opt.zero_grad()
        q(as_latents(x)).loss.backward()
        assert q.embedding.grad.abs().max() < 1e-6
        opt.step()
    assert (q.embedding.detach() - star).abs().max() < 1e-5
    # online (minibatch) updates: unbiased around the fixed point -> stay close; a perturbed start
    # is pulled back toward it (so the test can fail).
    g = torch.Generator().manual_seed(3)
    for start, bound in ((star, 0.15), (star + 0.6, None)):
        q.embedding.data.copy_(start)
        opt = torch.optim.SGD(q.parameters(), lr=0.5)  # ~17% of the way to the batch cell mean
        for _ in range(300):
            b = x[torch.randint(0, len(x), (32,), generator=g)]
            opt.zero_grad()
            q(as_latents(b)).loss.backward()
            opt.step()
        err = (q.embedding.detach() - star).norm(dim=1).max()
        if bound is not None:
            assert err < bound
        else:
            assert err < 0.5 * 0.6 * 2 ** 0.5


def test_vq_kmeans_init_matches_lloyd_fixed_point():
    x, cs = blobs(seed=5)
    q = build_quantizer("vq", num_codes=3, code_dim=2, init="kmeans", kmeans_iters=50)
    q.train()
    q(as_latents(x))  # first batch triggers k-means
    got = q.embedding.detach()
    order = torch.cdist(cs, got).argmin(1)
    torch.testing.assert_close(got[order], lloyd(x, cs), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ modified STE
@pytest.mark.parametrize("name,opts,d_of", [
    ("vq", dict(modified_ste=True), lambda n, d: n),
    ("vq", dict(modified_ste=True, ste_d="official"), lambda n, d: n * d),
    ("nsvq", dict(kernel=False), lambda n, d: n),
])
def test_modified_ste_gradients_eq18(name, opts, d_of):
    torch.manual_seed(1)
    q = build_quantizer(name, num_codes=12, code_dim=4, **opts)
    q.embedding.data.normal_()
    z = torch.randn(3, 4, 2, 2, requires_grad=True)
    out = q(z)
    torch.testing.assert_close(out.quantized, q.lookup(out.indices))  # forward value = code
    G = torch.randn_like(out.quantized)
    ((out.quantized * G).sum() + out.loss).backward()
    zf, g, idx = flat(z).detach(), flat(G), out.indices.flatten()
    n, d = zf.shape
    c = q.embedding.detach()
    enc = g + 0.25 * 2.0 / (n * d) * (zf - c[idx])  # identity STE + commitment
    torch.testing.assert_close(flat(z.grad), enc)
    code = torch.zeros_like(c)
    code.index_add_(0, idx, (2.0 / d_of(n, d)) * g + 2.0 / (n * d) * (c[idx] - zf))
    torch.testing.assert_close(q.embedding.grad, code)


# ------------------------------------------------------------------ NS-VQ
def nsvq_setup(k=8, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, d, 3, 4, generator=g)
    codes = torch.randn(k, d, generator=g) * 1.5
    return z.requires_grad_(True), codes


@pytest.mark.parametrize("epochs_done", [0, 2])
@pytest.mark.parametrize("chunk_rows", [None, 5])
@pytest.mark.parametrize("k", [8, 256])   # 256: the two-level argmax path and the shared CPU buffer
def test_nsvq_kernel_gradient_closed_form_eq16(epochs_done, chunk_rows, k):
    z, codes = nsvq_setup(k=k)
    kw = {} if chunk_rows is None else {"search_chunk_bytes": 4 * k * chunk_rows}
    q = build_quantizer("nsvq", num_codes=k, code_dim=2, **kw)
    q.embedding.data.copy_(codes)
    for e in range(epochs_done):
        q.on_epoch_end(e)
    width = 1.0 * 0.9 ** epochs_done
    assert q.current_scale == pytest.approx(width)
    out = q(z)
    out.loss.backward()
    zf, idx = flat(z).detach(), out.indices.flatten()
    n, d = zf.shape
    dist = ((zf[:, None] - codes[None]) ** 2).sum(-1)
    assert torch.equal(idx, dist.argmin(1))
    w = torch.exp(-dist / width)
    w[torch.arange(n), idx] = 0.0
    pull = (w[:, :, None] * (codes[None] - zf[:, None])).sum(0) / (n * d)   # sum_i w_ij (c_j - z_i)
    winner = torch.zeros_like(codes).index_add_(0, idx, 2.0 / (n * d) * (codes[idx] - zf))
    torch.testing.assert_close(q.embedding.grad, pull + winner)
    dead = torch.bincount(idx, minlength=k) == 0
    assert dead.any()  # the codes that win nothing are pulled, proportionally to the closed form
    assert q.embedding.grad[dead].abs().min() > 0
    kernel = 0.5 * (w * dist).sum() / (n * d)
    assert out.stats["kernel_loss"] == pytest.approx(float(kernel), rel=1e-5)


def test_nsvq_official_flavour_matches_written_formula():
    z, codes = nsvq_setup(seed=4)
    q = build_quantizer("nsvq", num_codes=8, code_dim=2, flavor="official", search_chunk_bytes=4 * 8 * 3)
    q.embedding.data.copy_(codes)
    q.on_epoch_end(0)  # tau = 0.5 ** 1
    emb = codes.clone().requires_grad_(True)
    zf = flat(z).detach()
    n, d = zf.shape
    # independent dense version of the authors' rule
    dist = ((zf[:, None] - emb[None]) ** 2).sum(-1)
    qi = dist.argmin(1)
    w = 0.01 * 8 * torch.softmax(-dist.detach() / 0.5, dim=1)
    w[torch.arange(n), qi] = 1.0
    w = w.clamp(0, 1)
    ref = (w * dist).sum(1).mean() / d + 0.25 * ((zf - emb[qi].detach()) ** 2).mean()
    ref.backward()
    out = q(z)
    out.loss.backward()
    assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    torch.testing.assert_close(q.embedding.grad, emb.grad, rtol=1e-5, atol=1e-7)
    # official STE divides by B*H*W*D
    assert q.config["ste_d"] == "official"


def test_nsvq_official_tau_schedule_and_floor():
    q = build_quantizer("nsvq", num_codes=4, code_dim=2, flavor="official")
    assert q.current_scale == 1.0
    q.on_epoch_end(2)
    assert q.current_scale == 0.5 ** 3
    q.on_epoch_end(40)
    assert q.current_scale == 1e-8


def test_nsvq_supp10_injection_gradient():
    z, codes = nsvq_setup(seed=7)
    q = build_quantizer("nsvq", num_codes=8, code_dim=2, kernel_in_ste=True, modified_ste=False,
                        search_chunk_bytes=4 * 8 * 2)
    q.embedding.data.copy_(codes)
    out = q(z)
    torch.testing.assert_close(out.quantized, q.lookup(out.indices), rtol=0, atol=0)
    G = torch.randn_like(out.quantized)
    (out.quantized * G).sum().backward()
    zf, g, idx = flat(z).detach(), flat(G), out.indices.flatten()
    w = torch.exp(-((zf[:, None] - codes[None]) ** 2).sum(-1))
    w[torch.arange(len(idx)), idx] = 0.0
    torch.testing.assert_close(q.embedding.grad, w.t() @ g)  # code n gets sum_i w_in g_i
    torch.testing.assert_close(flat(z.grad), g)


# ------------------------------------------------------------------ mapped codebooks
@pytest.mark.parametrize("name,opts", [("simvq", {}), ("transvq", {"model_dim": 16}),
                                       ("transvq", {"model_dim": 16, "mapper": "mlp"})])
def test_mapped_codebooks_move_all_codes_after_one_step(name, opts):
    torch.manual_seed(0)
    q = build_quantizer(name, num_codes=32, code_dim=4, **opts)
    opt = torch.optim.SGD(q.parameters(), lr=0.1)
    before = q.codebook.detach().clone()
    out = q(torch.randn(1, 4, 1, 1))  # one sample
    out.loss.backward()
    opt.step()
    moved = (q.codebook.detach() - before).norm(dim=1)
    assert (moved > 0).all()
    # contrast: plain vq moves only the winner
    v = build_quantizer("vq", num_codes=32, code_dim=4)
    opt = torch.optim.SGD(v.parameters(), lr=0.1)
    before = v.codebook.detach().clone()
    v(torch.randn(1, 4, 1, 1)).loss.backward()
    opt.step()
    assert int(((v.codebook.detach() - before).norm(dim=1) > 0).sum()) == 1


def test_transvq_linear_attention_formula():
    from paper_repro.quantizers.transvq import LinearAttention
    torch.manual_seed(0)
    att = LinearAttention(5)
    x = torch.randn(7, 5)
    phi = lambda t: torch.nn.functional.elu(t) + 1
    qf, kf, v = phi(att.q(x)), phi(att.k(x)), att.v(x)
    ref = torch.stack([
        sum(torch.outer(kf[j], v[j]) for j in range(7)).t() @ qf[i]
        / (qf[i] @ kf.sum(0) + 1e-6) for i in range(7)])
    torch.testing.assert_close(att(x), att.out(ref))


def test_fc_codebook_is_projected_normalised_codes():
    torch.manual_seed(0)
    q = build_quantizer("fc", num_codes=16, code_dim=6, lookup_dim=3)
    cn = torch.nn.functional.normalize(q.codes.detach(), dim=1)
    assert torch.allclose(cn.norm(dim=1), torch.ones(16))
    torch.testing.assert_close(q.codebook.detach(), q.proj_out(cn).detach())
    z = torch.randn(2, 6, 3, 3)
    out = q(z)
    zp = torch.nn.functional.normalize(q.proj_in(flat(z)), dim=1).detach()
    assert torch.equal(out.indices.flatten(), (zp @ cn.t()).argmax(1))  # cosine lookup


# ------------------------------------------------------------------ EMA
def test_ema_converges_to_cell_means():
    x, cs = blobs(seed=2)
    q = build_quantizer("ema", num_codes=3, code_dim=2, decay=0.9)
    q.embed.copy_(cs + 0.4)
    q.embed_avg.copy_(cs + 0.4)
    for _ in range(250):
        out = q(as_latents(x))
    idx = out.indices.flatten()
    means = torch.stack([x[idx == k].mean(0) for k in range(3)])
    torch.testing.assert_close(q.embed, means, rtol=1e-3, atol=1e-3)


def test_rotation_trick_value_and_gradient():
    torch.manual_seed(0)
    z = torch.randn(5, 3, requires_grad=True)
    c = torch.randn(5, 3)
    out = rotation_trick(z, c)
    torch.testing.assert_close(out, c, rtol=1e-5, atol=1e-5)
    g = torch.randn(5, 3)
    (out * g).sum().backward()
    for i in range(5):
        zh, ch = z[i].detach() / z[i].detach().norm(), c[i] / c[i].norm()
        r = (zh + ch) / (zh + ch).norm()
        R = torch.eye(3) - 2 * torch.outer(r, r) + 2 * torch.outer(ch, zh)
        torch.testing.assert_close(R @ zh, ch, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(R.t() @ R, torch.eye(3), rtol=1e-5, atol=1e-5)  # a rotation
        lam = c[i].norm() / z[i].detach().norm()
        torch.testing.assert_close(z.grad[i], lam * R.t() @ g[i], rtol=1e-5, atol=1e-5)
    q = build_quantizer("ema", num_codes=8, code_dim=3, rotation_trick=True)
    zz = torch.randn(2, 3, 2, 2)
    out = q(zz)
    q.eval()
    out = q(zz)
    assert torch.equal(out.quantized, q.lookup(out.indices))


# ------------------------------------------------------------------ replacement
@pytest.mark.parametrize("name", ["vq", "nsvq", "ema", "fc", "simvq", "transvq"])
def test_dead_code_replacement(name):
    """Every code unused since the last replacement moves onto its own reservoir latent (in the
    method's sense, see replacement.py); the codes in use stay where they were."""
    torch.manual_seed(0)
    extra = {"model_dim": 16} if name == "transvq" else {}
    q = build_quantizer(name, num_codes=64, code_dim=4, replacement=dict(threshold=1.0, reservoir_size=256, every=1),
                        **extra)
    z = torch.randn(1, 4, 8, 16) * 3                       # 128 latents: more than the dead codes
    out = q(z)
    used = sorted(set(out.indices.flatten().tolist()))
    dead = torch.tensor(sorted(set(range(64)) - set(used)))
    assert q.replacer.pending  # it runs at the start of the next training forward (a checkpointed flag)
    before = q.codebook.detach().clone()
    n_replaced = q.replace_dead_codes()
    assert n_replaced == len(dead) > 0
    assert q.replacer.counts.sum() == 0                    # counts restart after a replacement
    cb = q.codebook.detach()
    latents = flat(z)
    if name != "transvq":                                  # transvq's map mixes every code
        torch.testing.assert_close(cb[used], before[used], rtol=0, atol=1e-6)
    if name in ("vq", "nsvq", "ema", "simvq"):
        # every replaced code now sits on a reservoir latent, each on a different one
        d2 = ((cb[dead][:, None] - latents[None]) ** 2).sum(-1)
        assert d2.min(1).values.max() < 1e-8
        assert d2.argmin(1).unique().numel() == len(dead)
    elif name == "fc":                                     # exact in the lookup space
        target = torch.nn.functional.normalize(q.proj_in(latents), dim=1).detach()
        d2 = ((q.lookup_codebook.detach()[dead][:, None] - target[None]) ** 2).sum(-1)
        assert d2.min(1).values.max() < 1e-10
        assert d2.argmin(1).unique().numel() == len(dead)
    else:  # transvq: each replaced code lands next to a live code (it copies one's base row, +1 % noise)
        spread = (cb - cb.mean(0)).norm(dim=1).mean()
        near = torch.cdist(cb[dead], cb[used]).min(1).values
        assert near.max() < 0.1 * spread, (near.max(), spread)
        far = torch.cdist(before[dead], before[used]).min(1).values   # before: not all of them were
        assert far.max() > near.max()
    q(z)
    assert q.replacer.counts.sum() == 128


def test_replacement_with_fewer_latents_stored_than_dead_codes_uses_each_latent_once():
    torch.manual_seed(1)
    q = build_quantizer("vq", num_codes=64, code_dim=4, replacement=dict(threshold=1.0, reservoir_size=32, every=1))
    z = torch.randn(1, 4, 2, 4) * 3                        # 8 latents, about 56 dead codes
    used = set(q(z).indices.flatten().tolist())
    before = q.codebook.detach().clone()
    assert q.replace_dead_codes() == 8                     # one code per stored latent; the rest wait
    moved = (q.codebook.detach() != before).any(1).nonzero().flatten().tolist()
    assert len(moved) == 8 and not set(moved) & used
    d2 = ((q.codebook.detach()[moved][:, None] - flat(z)[None]) ** 2).sum(-1)
    assert d2.min(1).values.max() < 1e-8 and d2.argmin(1).unique().numel() == 8


def test_ema_reseeds_dead_codes_with_distinct_latents():
    """Identical reseeded codes would tie in the search and all but one stay dead (the authors'
    library samples without replacement when the batch is large enough)."""
    torch.manual_seed(0)
    q = build_quantizer("ema", num_codes=64, code_dim=4, dead_code_threshold=1e9)   # every code dead
    z = torch.randn(1, 4, 8, 10)                            # 80 latents >= 64 dead codes
    q(z)
    d2 = ((q.embed[:, None] - flat(z)[None]) ** 2).sum(-1)
    assert d2.min(1).values.max() < 1e-10                   # each code on a latent
    assert d2.argmin(1).unique().numel() == 64              # all different
    small = build_quantizer("ema", num_codes=64, code_dim=4, dead_code_threshold=1e9)
    small(torch.randn(1, 4, 2, 4))                          # 8 latents for 64 codes: repeats unavoidable
    assert torch.isfinite(small.embed).all()


def test_replacer_counts_are_integers_and_load_from_a_float_checkpoint():
    q = build_quantizer("vq", num_codes=8, code_dim=2, replacement=dict(threshold=1.0, reservoir_size=16, every=1))
    assert q.replacer.counts.dtype == torch.long           # not overwritten by the trainer's float-buffer broadcast
    sd = q.state_dict()
    sd["replacer.counts"] = torch.arange(8, dtype=torch.float32)   # written before the counts were int64
    q.load_state_dict(sd)
    assert q.replacer.counts.dtype == torch.long and q.replacer.counts.tolist() == list(range(8))


@pytest.mark.parametrize("name", ["vq", "nsvq", "ema", "fc", "simvq", "transvq"])
def test_assign_is_the_code_a_forward_pass_selects(name):
    torch.manual_seed(0)
    extra = {"model_dim": 16} if name == "transvq" else {}
    opts = {"lookup_dim": 2} if name == "fc" else {}
    q = build_quantizer(name, num_codes=32, code_dim=8, **extra, **opts).eval()
    z = torch.randn(2, 8, 4, 4) * 2
    idx = q.assign(flat(z))
    assert torch.equal(idx, q(z).indices.flatten())
    if name == "fc":   # the D-space nearest of the effective codes is another code for many latents
        assert (q.search(flat(z), q.codebook.detach()) != idx).any()
