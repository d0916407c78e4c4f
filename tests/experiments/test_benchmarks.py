"""The benchmark-table reader: ratios and target verdicts from known numbers, clear errors."""
import json

import pandas as pd
import pytest

from paper_repro.experiments.benchmarks import load_benchmarks, ratio_table, speed_table, target_table


def _write(root, name, device, rows):
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / f"{name}.csv", index=False)
    (root / f"{name}.provenance.json").write_text(json.dumps(
        {"device": device, "git_commit": "abc123def4567890", "date": "2026-11-23T00:00:00+00:00",
         "versions": {"torch": "2.14.1"}}))


def _row(method, k, ms, note=""):
    return dict(method=method, K=k, N=16384, d=64, ms_median=ms, ms_min=ms, peak_mib=10.0,
                device="x", note=note)


def test_ratios_and_targets(tmp_path):
    _write(tmp_path, "gpu", "cuda: Some GPU", [
        _row("vq", 1024, 1.0), _row("nsvq", 1024, 1.2), _row("vqpytorch", 1024, 5.0),
        _row("vq", 65536, 10.0), _row("nsvq", 65536, 16.0), _row("vqpytorch", 65536, 25.0)])
    _write(tmp_path, "cpu", "cpu: Some CPU (2 threads)", [
        _row("vq", 65536, 100.0), _row("nsvq", 65536, 140.0), _row("vqpytorch", 65536, "", "out of memory"),
        _row("vq", 1024, 10.0), _row("vqpytorch", 1024, 35.0)])
    df = load_benchmarks(tmp_path)
    assert set(df.device_name) == {"cuda: Some GPU", "cpu: Some CPU (2 threads)"}
    r = ratio_table(df, "cuda: Some GPU")
    assert r.loc[r.index.str.startswith("nsvq (paper"), "K=65,536"].item() == pytest.approx(1.6)
    assert r.loc[r.index.str.startswith("nsvq (paper"), "K=1,024"].item() == pytest.approx(1.2)
    t = target_table(df).set_index(["device", "target"])
    gpu = t.loc["cuda: Some GPU"]
    assert gpu.loc["NS-VQ within 1.5x of vq", "met"] == False  # noqa: E712  1.6 > 1.5
    assert gpu.loc["NS-VQ within 1.5x of vq", "K"] == 65536 and gpu["note"].eq("").all()
    assert gpu.loc["vq at least 2x faster than vector-quantize-pytorch", "met"] == True  # noqa: E712
    cpu = t.loc["cpu: Some CPU (2 threads)"]
    assert cpu.loc["NS-VQ within 1.5x of vq", "met"] == True  # noqa: E712  1.4 <= 1.5
    assert not cpu["applies"].any() and gpu["applies"].all()
    # a target with no K where both methods ran gives no verdict, not a false one
    _write(tmp_path, "other", "cuda: Other GPU", [_row("vq", 8, 1.0), _row("vqpytorch", 8, "", "not importable: x")])
    other = target_table(load_benchmarks(tmp_path)).set_index(["device", "target"]).loc["cuda: Other GPU"]
    assert other.loc["vq at least 2x faster than vector-quantize-pytorch", "met"] is None
    assert "not importable" in other.loc["vq at least 2x faster than vector-quantize-pytorch", "note"]
    # the vqpytorch target falls back to the largest K where both ran, and says so
    cpu_ns = target_table(df)
    row = cpu_ns[(cpu_ns.device == "cpu: Some CPU (2 threads)") & cpu_ns.target.str.startswith("vq at")].iloc[0]
    assert row.K == 1024 and row.ratio == pytest.approx(3.5) and row.met
    assert "K=65,536: out of memory" in row.note
    s = speed_table(df, "cuda: Some GPU")
    assert list(s.columns) == ["K=1,024", "K=65,536"] and s.index[0].startswith("vq")


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="bench_quantizers.py"):
        load_benchmarks(tmp_path)
    pd.DataFrame([_row("vq", 8, 1.0)]).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ValueError, match="no provenance"):
        load_benchmarks(tmp_path)


def test_committed_tables_load():
    """Every table committed under data/results/bench_quantizers has provenance and vq rows."""
    df = load_benchmarks()
    for device_name in df.device_name.unique():
        assert ratio_table(df, device_name).notna().any().any()


def test_noisy_medians_and_no_peak_bound_from_a_cpu_table(tmp_path):
    from paper_repro.experiments.benchmarks import noisy_medians, peak_memory_bound

    rows = [_row("vq", 1024, 10.0), _row("nsvq", 1024, 20.0)]
    rows[0]["ms_min"] = 6.0                                   # median 1.67 x the fastest step
    _write(tmp_path, "cpu", "cpu: Some CPU (2 threads)", rows)
    _write(tmp_path, "gpu", "cuda: Some GPU", [_row("vq", 1024, 1.0), _row("nsvq", 1024, 1.2)])
    df = load_benchmarks(tmp_path)
    assert noisy_medians(df, "cpu: Some CPU (2 threads)") == [
        "vq (chunked addmm search) at K=1,024: median 10.0 ms, fastest 6.0 ms"]
    assert noisy_medians(df, "cuda: Some GPU") == []
    assert peak_memory_bound(df, "cuda: Some GPU") == (10.0, True)
    with pytest.raises(ValueError, match="not a peak"):
        peak_memory_bound(df, "cpu: Some CPU (2 threads)")
    assert speed_table(df, "cpu: Some CPU (2 threads)", value="peak_mib").index.name.startswith("resident-set growth")
    assert speed_table(df, "cuda: Some GPU", value="peak_mib").index.name.startswith("peak memory")
