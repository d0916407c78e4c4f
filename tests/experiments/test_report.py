"""Report helpers: seed aggregation, named FD column, captions naming the proxies, rounding."""
import json

import pandas as pd
import pytest

from paper_repro.experiments import report


def _df(fd_metric="FD-VGG16"):
    rows = []
    for q, usage in (("vq", [0.1, 0.3]), ("nsvq", [0.9, 1.0])):
        for s, u in enumerate(usage):
            rows.append(dict(quantizer=q, num_codes=1024, code_dim=64, seed=s, eval_usage=u,
                             eval_perplexity=10.0 * (s + 1), psnr=20.0 + s, ssim=0.5, lpips=0.2, fd=30.0 + s,
                             fd_metric=fd_metric, dataset="fashion_mnist", image_size=32, profile="gpu",
                             epochs=10, batch_size=16, width=1.0, train_images=None, eval_images=10000))
    return pd.DataFrame(rows)


def test_summary_table_means_and_sds_over_seeds():
    t = report.summary_table(_df())
    assert list(t["Method"]) == ["VQ (vanilla)", "NS-VQ"]
    vq = t.iloc[0]
    assert vq["Seeds"] == 2 and vq["Eval usage"] == pytest.approx(0.2)
    assert vq["Eval usage sd"] == pytest.approx(((0.1 - 0.2) ** 2 * 2) ** 0.5)   # ddof = 1
    assert "FD-VGG16" in t.columns and "FD-VGG16 sd" in t.columns


def test_caption_names_every_proxy_and_mixed_fd_is_refused():
    cap = report.caption(_df())
    assert "Fashion-MNIST 32\u00d732" in cap and "not rFID" in cap and "VGG16 features" in cap
    assert "CelebA-HQ" in cap and "evaluation split" in cap
    assert "native resolution" in report.caption(_df("FD-VGG16@native"))
    # the committed fd_floor study gives the scale of FD-VGG16@native at the sizes it measured
    from paper_repro.metrics.fd_floor import STUDY
    floor, _ = STUDY.load()
    m = floor.loc[floor.eval_images == 2000, "fd_real_real"]
    native = report.caption(_df("FD-VGG16@native").assign(eval_images=2000))
    assert f"for scale, two independent samples of 2,000 real images lie FD-VGG16@native {m.mean():.2f} " in native
    assert "for scale" not in cap and "for scale" not in report.caption(_df("FD-VGG16@native"))   # 10,000: not measured
    assert "2 seeds" in cap and "warm-up" not in cap          # no warm-up column: none named
    # a warm-up is a departure from the paper: named, with its length; mixed arms say so
    warm = _df().assign(warmup_steps=500)
    assert "a 500-step learning-rate warm-up (not in the paper)" in report.caption(warm)
    warm.loc[warm.quantizer == "vq", "warmup_steps"] = 0
    assert "with and without a 500-step learning-rate warm-up" in report.caption(warm)
    assert "warm-up" not in report.caption(_df().assign(warmup_steps=0))
    # a cell with fewer seeds than the others is not hidden behind the largest count
    assert "1-2 seeds per cell" in report.caption(_df().drop(index=3))
    assert report.seeds_per_cell(_df()[_df().seed == 0]) == "1 seed"
    # training length: a step cap shared by runs of different epochs is the length; a cap on some runs
    # only is named as such, never as "for every run"
    steps = _df().assign(max_steps=1000.0)
    steps.loc[steps.quantizer == "vq", "epochs"] = 40
    assert "1,000 optimiser steps for every run" in report.caption(steps)
    # a run that stopped short of the cap (its epochs hold fewer full batches) is named with its steps
    short = steps.assign(steps=1000)
    assert "every run," in report.caption(short)
    short.loc[short.quantizer == "vq", "steps"] = 994
    assert "1,000 optimiser steps for every run (batch 16: 994, where its whole epochs" in report.caption(short)
    steps.loc[steps.quantizer == "vq", "max_steps"] = float("nan")
    assert "10-40 epochs (at most 1,000 optimiser steps where capped)" in report.caption(steps)
    assert "10 epochs (at most 1,000 optimiser steps)" in report.caption(_df().assign(max_steps=1000.0))
    mixed = _df()
    mixed.loc[0, "fd_metric"] = "rFID"
    with pytest.raises(ValueError, match="not comparable"):
        report.summary_table(mixed)


def test_check_lines_and_claim():
    lines = report.check_lines(_df())
    assert lines[0] == ("VQ (vanilla) K=1024 D=64: Eval usage=0.200, PSNR (dB)=20.5, SSIM=0.500, "
                        "LPIPS (AlexNet)=0.200, FD-VGG16=30.5")
    # per-seed differences nsvq - vq: 0.8, 0.7 -> mean 0.75, sd 0.0707, se 0.05: supported
    v = report.usage_verdict(_df())
    assert v.verdict == "supported" and v.n == 2 and v.mean == pytest.approx(0.75)
    flipped = _df()
    flipped["quantizer"] = flipped["quantizer"].map({"vq": "nsvq", "nsvq": "vq"})
    assert report.usage_verdict(flipped).verdict == "contradicted"
    assert report.usage_verdict(_df().assign(profile="ci")).verdict == "pipeline check"
    assert report.usage_verdict(_df()[_df().seed == 0]).verdict == "not judged"
    assert report.usage_verdict(_df()[_df().quantizer == "nsvq"]) is None      # one side not run yet


@pytest.mark.parametrize("v, s", [(17.0, "17.0"), (150.0, "150"), (0.0137, "0.0137"), (0.5, "0.500"),
                                  (1234.5, "1230"), (-2.345, "-2.35"), (0.0, "0")])
def test_significant_digits(v, s):
    assert report.sig(v, 3) == s


def test_provenance_lines_group_by_commit_and_device_with_the_span_of_dates(tmp_path):
    paths = []
    for i, (commit, date) in enumerate((("a" * 40, "2026-12-04T01:00:00"), ("a" * 40, "2026-12-03T23:00:00"),
                                        ("b" * 40, "2026-12-04T02:00:00"))):
        p = tmp_path / f"{i}.json"
        p.write_text(json.dumps({"provenance": {"git_commit": commit, "device": "cpu: X", "date": date,
                                                "versions": {"torch": "2", "numpy": "1"}}}))
        paths.append(str(p))
    lines = report.provenance_lines(pd.DataFrame({"record_path": paths}))
    assert lines == ["Provenance: commit aaaaaaaaaaaa, cpu: X, torch 2, numpy 1, "
                     "2026-12-03T23:00:00 to 2026-12-04T01:00:00 [2 runs]",
                     "Provenance: commit bbbbbbbbbbbb, cpu: X, torch 2, numpy 1, 2026-12-04T02:00:00 [1 run]"]


def test_text_figure_says_its_text_and_nothing_else():
    import matplotlib
    matplotlib.use("agg")
    fig = report.text_figure("no runs yet")
    assert [t.get_text() for t in fig.axes[0].texts] == ["no runs yet"] and not fig.axes[0].axison


def test_a_displayed_commit_keeps_its_dirty_or_copy_mark():
    from paper_repro.provenance import format_provenance, short_commit

    sha = "9f808f1cc95e" + "0" * 28
    assert short_commit(sha) == "9f808f1cc95e"
    assert short_commit(sha + "+dirty") == "9f808f1cc95e+dirty" and short_commit(sha + "+copy") == "9f808f1cc95e+copy"
    assert "commit 9f808f1cc95e+dirty," in format_provenance({"git_commit": sha + "+dirty"})
