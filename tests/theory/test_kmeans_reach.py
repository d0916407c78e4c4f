"""Sec. 3.4.3 k-means reach study: the measures on known cases, the claim rule, and the committed
study reproduced (both SimVQ maps, seed 0, 1-D) within a stated tolerance."""
import pandas as pd
import pytest
import torch

from paper_repro.theory import kmeans_reach as kr


def test_lloyds_solution_is_a_fixed_point_and_data_as_codes_has_zero_distortion():
    x = kr.make_data(2, n=512)
    c, d = kr.lloyd_best(x, 8, restarts=3)
    assert kr.fixed_point_gap(x, c) < 1e-5
    assert kr.distortion(x, x[:64]) < kr.distortion(x, c) * 10
    assert kr.distortion(x[:16], x[:16]) == 0.0
    # moving one code by 1 off its cell mean gives a gap of 1 / ||std||
    c2 = c.clone()
    c2[0, 0] += 0.01
    assert kr.fixed_point_gap(x, c2) == pytest.approx(0.01 / float(x.double().std(0).norm()), rel=0.05)


def test_claim_rule_on_made_up_ratios():
    """TransVQ is judged in the paper's form (no position embedding) first and, named, as the
    authors' code has it; each claim reads its own variant's ratios."""
    assert set(kr.TRANSVQ_JUDGED) <= set(kr.VARIANTS) and next(iter(kr.TRANSVQ_JUDGED)) == "TransVQ (no position embedding)"
    rows = [dict(dim=1, variant=v, seed=s, distortion_ratio=r + 0.01 * s, fixed_point_gap=0.0, usage=1.0)
            for v, r in (("free codes (VQ)", 1.0), ("SimVQ (W C, paper)", 5.0), ("TransVQ (authors' code)", 1.02),
                         ("TransVQ (no position embedding)", 1.03))
            for s in range(3)]
    v = {x.claim.split(": ", 1)[1]: x.verdict for x in kr.claim_verdicts(pd.DataFrame(rows))}
    assert len(v) == 6 and set(v.values()) == {"supported"}
    # the paper's map far from Lloyd's, the authors' code at it: only the paper-form claims fail
    rows = [dict(r, distortion_ratio=6.0 + 0.01 * r["seed"]) if r["variant"] == "TransVQ (no position embedding)"
            else r for r in rows]
    got = [(x.claim.split(": ", 1)[1], x.verdict) for x in kr.claim_verdicts(pd.DataFrame(rows))]
    assert [g[1] for g in got] == ["supported", "supported", "contradicted", "contradicted", "supported", "supported"]
    assert "paper's map" in got[2][0] and "authors' code" in got[4][0]


def test_committed_study_reproduces():
    """A re-run of both SimVQ maps at seed 0 in 1-D matches the committed distortion ratio to 1e-3
    relative. Measured when the study was committed: ATen's scalar kernels with oneDNN AVX2 and one
    thread moved SimVQ (W C)'s ratio by 4e-7 relative, another seed by 0.2; the free codebook is not
    re-checked here because other kernels moved its ratio by 4e-2 (a code changed cluster), as much
    as another seed does."""
    df, prov = kr.load()
    steps = prov["setup"]["steps"]
    x = kr.make_data(1)
    _, best = kr.lloyd_best(x, 16, prov["setup"]["lloyd_restarts"])
    for variant in ("SimVQ (W C + b, official)", "SimVQ (W C, paper)"):
        c = kr.fit(x, variant, 16, steps=steps, lr=prov["setup"]["lr"], seed=0)
        ours = kr.distortion(x, c) / best
        rec = df[(df.dim == 1) & (df.variant == variant) & (df.seed == 0)]["distortion_ratio"].item()
        assert ours == pytest.approx(rec, rel=1e-3), f"{variant}: ours {ours:.6g}, committed {rec:.6g}, tolerance 1e-3 relative"


def test_recheck_recomputes_with_the_committed_setup_and_applies_the_study_rule(monkeypatch):
    df, prov = kr.load()
    seen = {}

    def fake_study(**kw):          # the committed seeds 0-1, shifted where asked
        seen.update(kw)
        return df[df.seed.isin(kw["seeds"])].assign(usage=lambda t: t.usage + shift)

    monkeypatch.setattr(kr, "study", fake_study)
    shift = 0.0
    check = kr.recheck(df, prov["setup"], range(2))
    assert seen == {"dims": (1, 2), "seeds": (0, 1), "num_codes": 16, "steps": prov["setup"]["steps"],
                    "lr": prov["setup"]["lr"], "restarts": prov["setup"]["lloyd_restarts"]}
    assert check["ok"].all() and len(check) == 3 * df.groupby(["dim", "variant"]).ngroups
    shift = 0.5                      # half the codebook more in use: outside every usage tolerance that can fail
    bad = kr.recheck(df, prov["setup"], range(2)).set_index("statistic").loc["usage"]
    assert not bad[bad.can_fail]["ok"].any() and bad.can_fail.any()
    with pytest.raises(ValueError, match="at least one seed"):
        kr.recheck(df, prov["setup"], [])


def test_options_exist_and_change_the_map():
    from paper_repro.quantizers import build_quantizer
    assert build_quantizer("simvq", num_codes=4, code_dim=2, bias=False).proj.bias is None
    t = build_quantizer("transvq", num_codes=4, code_dim=2, position_embedding=False, model_dim=8)
    assert t.mapper.pos is None and t.codebook.shape == (4, 2)
    with pytest.raises(ValueError, match="position_embedding"):
        build_quantizer("transvq", num_codes=4, code_dim=2, position_embedding="no")
    with pytest.raises(ValueError, match="bias"):
        build_quantizer("simvq", num_codes=4, code_dim=2, bias=1)
    assert torch.isfinite(t.codebook).all()
