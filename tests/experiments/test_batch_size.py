"""Figure 4 grid and analysis: grid contents, monotonicity claims on known numbers, per-epoch curves
from real (tiny) runs."""
import json

import pandas as pd
import pytest

import paper_repro.training.trainer as trainer_mod
from paper_repro.experiments import GRIDS, batch_size as bs, get_grid, run_grid, store

from training._helpers import tiny_config, tiny_data


def test_grid():
    g = get_grid("batch_size", "gpu")
    assert {c.batch_size for c in g} == {4, 8, 16, 32, 64} and len(g) == 15
    assert all(c.quantizer == "vq" and c.num_codes == 64 and c.code_dim == 64 and c.eval_every_epoch
               for c in g)


def _final(fd, usage, seeds=(0,), jitter=0.0, profile="cpu"):     # cpu: batch sizes 4, 16, 64 (the whole grid)
    rows = []
    for s in seeds:
        for i, b in enumerate((4, 16, 64)):
            rows.append({"batch_size": b, "fd": fd[i] + jitter * s, "eval_usage": usage[i] + jitter * s / 100,
                         "psnr": 20.0, "steps": [100, 25, 7][i], "seed": s, "fd_metric": "FD-VGG16",
                         "profile": profile})
    return pd.DataFrame(rows)


def test_claims_are_judged_on_every_consecutive_pair_over_seeds():
    ok = bs.verdicts(_final([30.0, 20.0, 10.0], [0.2, 0.5, 0.9], seeds=(0, 1, 2)))
    assert [v.verdict for v in ok] == ["supported", "supported"]
    assert ok[0].claim == "Paper's Fig. 4: the final FD-VGG16 falls with every larger batch size"
    assert len(ok[0].parts) == 2 and ok[0].parts[0].n == 3
    bad = bs.verdicts(_final([30.0, 35.0, 10.0], [0.2, 0.2, 0.9], seeds=(0, 1, 2)))
    assert [v.verdict for v in bad] == ["contradicted", "contradicted"]     # a rise, and a tie
    one = bs.verdicts(_final([30.0, 20.0, 10.0], [0.2, 0.5, 0.9]))
    assert [v.verdict for v in one] == ["not judged", "not judged"]
    ci = bs.verdicts(_final([30.0, 20.0, 10.0], [0.2, 0.5, 0.9], seeds=(0, 1), profile="ci"))
    assert [v.verdict for v in ci] == ["pipeline check"] * 2
    assert "\n    " in bs.claim_lines(_final([30.0, 20.0, 10.0], [0.2, 0.5, 0.9]))[0]   # one line per pair
    t = bs.final_table(_final([30.0, 20.0, 10.0], [0.2, 0.5, 0.9]))
    assert list(t["batch size"]) == [4, 16, 64] and "FD-VGG16" in t.columns
    single = _final([1.0] * 3, [1.0] * 3).iloc[:1]                  # one batch size committed so far
    assert bs.verdicts(single) == [] and "two batch sizes" in bs.claim_lines(single)[0]


def test_curves_from_real_runs(tmp_path, monkeypatch):
    grid = lambda profile: [tiny_config(batch_size=b, eval_every_epoch=True) for b in (4, 16)]  # noqa: E731
    monkeypatch.setitem(GRIDS, "_bs", grid)
    monkeypatch.setattr(trainer_mod, "load_data", lambda cfg: tiny_data())
    run_grid("_bs", "gpu", root=tmp_path / "r", runs_root=tmp_path / "runs", verbose=False)
    df = store.load_results("_bs", "gpu", tmp_path / "r")
    c = bs.curves(df)
    assert list(zip(c.batch_size, c.epoch)) == [(4, 1), (4, 2), (16, 1), (16, 2)]
    last = c[c.epoch == 2].set_index("batch_size")["usage"]
    assert last.to_dict() == df.set_index("batch_size")["eval_usage"].to_dict()   # last epoch = final
    monkeypatch.setitem(GRIDS, "_bs0", lambda profile: [tiny_config(batch_size=4)])
    run_grid("_bs0", "gpu", root=tmp_path / "r", runs_root=tmp_path / "runs", verbose=False)
    with pytest.raises(ValueError, match="eval_every_epoch"):
        bs.curves(store.load_results("_bs0", "gpu", tmp_path / "r"))


def test_a_partial_batch_grid_supports_no_every_batch_claim():
    part = bs.verdicts(_final([30.0, 20.0, 10.0], [0.2, 0.5, 0.9], seeds=(0, 1, 2), profile="gpu"))  # 3 of 5 sizes
    assert [v.verdict for v in part] == ["inconclusive", "inconclusive"]
    assert "[2 of its 4 cells run]" in part[0].claim


def test_the_lr_scaled_arm_is_the_batch_grid_with_adams_square_root_rule():
    """batch_lr: lr x sqrt(batch / 16) and nothing else changed, so its batch-16 runs are the batch_size
    grid's (same config hash: trained once, shared)."""
    from paper_repro.experiments.grids import scaled_lr
    from paper_repro.training.config import config_hash
    for profile in ("ci", "cpu", "gpu"):
        lr, base = get_grid("batch_lr", profile), get_grid("batch_size", profile)
        assert len(lr) == len(base)
        for a, b in zip(lr, base):
            assert a.lr == pytest.approx(b.lr * (a.batch_size / 16) ** 0.5)
            assert a.replace(lr=b.lr, experiment=b.experiment) == b
            assert (config_hash(a) == config_hash(b)) == (a.batch_size == 16)
    assert scaled_lr("cpu", 64) == pytest.approx(1e-3) and scaled_lr("cpu", 4) == pytest.approx(2.5e-4)


def test_arm_verdicts_name_each_arm_and_skip_the_missing_ones():
    frames = {"fixed epochs": _final([30.0, 20.0, 10.0], [0.2, 0.5, 0.9], seeds=(0, 1, 2)),
              "fixed steps": _final([30.0, 20.0, 10.0], [0.2, 0.5, 0.9], seeds=(0, 1, 2))}
    vs = bs.arm_verdicts(frames)
    assert [v.claim for v in vs] == ["Paper's Fig. 4: the final FD-VGG16 falls with every larger batch size (fixed steps)",
                                     "Sec. 3.2.2: the final eval usage rises with every larger batch size (fixed steps)"]
    frames[bs.ARMS["batch_lr"]] = _final([30.0, 35.0, 10.0], [0.2, 0.5, 0.9], seeds=(0, 1, 2))
    vs = bs.arm_verdicts(frames)
    assert len(vs) == 4 and vs[2].verdict == "contradicted" and vs[2].claim.endswith(f"({bs.ARMS['batch_lr']})")


def test_curves_plot_a_row_per_arm_on_one_distance_axis(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("agg")
    rows = []
    for i, b in enumerate((4, 16)):
        for s in (0, 1):
            rec = {"config_hash": f"h{b}{s}", "config": {"quantizer": "vq", "tag": None, "batch_size": b, "seed": s},
                   "epochs": [{"epoch": e, "complete": True, "eval": {"fd": 10.0 * (i + 1) + s + e, "eval_usage": 0.5}}
                              for e in range(2)]}
            p = tmp_path / f"{b}{s}.json"
            p.write_text(json.dumps(rec))
            rows.append({"record_path": str(p), "batch_size": b, "seed": s, "fd_metric": "FD-VGG16"})
    df = pd.DataFrame(rows)
    fig = bs.plot_curves({"fixed epochs": df, "other": df.assign(fd_metric="FD-VGG16")})
    assert len(fig.axes) == 4 and fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[2])
    assert fig.axes[2].get_title().endswith("(other)")
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == pytest.approx([10.5, 11.5])   # batch 4: mean of seeds
    one = bs.plot_curves(df)
    assert len(one.axes) == 2 and "(" not in one.axes[0].get_title()
