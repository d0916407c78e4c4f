"""Atomic writes, weights_only checkpoints, RNG state round trips, the (seed, epoch) sampler."""
import json
import os
import random

import numpy as np
import pytest
import torch

from paper_repro.training import EpochSampler, load_checkpoint
from paper_repro.training.checkpoint import atomic_torch_save, atomic_write_json, rng_state, set_rng_state


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    atomic_write_json(p, {"a": 1})

    def boom(src, dst):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(p, {"a": 2})
    monkeypatch.undo()
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]      # no temporary left behind


def test_atomic_write_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"v": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_rng_state_round_trip_through_weights_only_checkpoint(tmp_path):
    random.seed(1); np.random.seed(2); torch.manual_seed(3)
    np.random.randn()          # leaves a cached gaussian in numpy's legacy state
    atomic_torch_save({"rng": rng_state()}, tmp_path / "c.pt")
    expected = (random.random(), np.random.randn(3), torch.rand(3))
    random.seed(9); np.random.seed(9); torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])   # weights_only=True inside
    got = (random.random(), np.random.randn(3), torch.rand(3))
    assert got[0] == expected[0]
    assert np.array_equal(got[1], expected[1]) and torch.equal(got[2], expected[2])


class _OnDevice:
    """A tensor that lives on an accelerator: .numpy() refuses it until .cpu() brings it back."""

    def __init__(self, t):
        self.t = t

    def cpu(self):
        return self.t

    def numpy(self):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")


def test_rng_state_restores_from_a_checkpoint_loaded_onto_a_gpu():
    """A resume on a GPU loads the checkpoint with map_location=cuda, so the NumPy generator's state
    arrives as a device tensor (every CUDA resume failed on it, seen on the lent H200)."""
    np.random.seed(5)
    state = rng_state()
    want = np.random.rand(3)
    state["numpy"]["state"] = _OnDevice(state["numpy"]["state"])
    set_rng_state(state)
    assert np.array_equal(np.random.rand(3), want)


def test_load_checkpoint_refuses_arbitrary_objects(tmp_path):
    import datetime
    torch.save({"x": datetime.date(2020, 1, 1)}, tmp_path / "e.pt")   # not a tensor/primitive
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(tmp_path / "e.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_sampler_order_is_a_function_of_seed_and_epoch():
    s = EpochSampler(100, 8, seed=5)
    torch.manual_seed(0); a = s.rank_indices(3)
    torch.manual_seed(1); b = EpochSampler(100, 8, seed=5).rank_indices(3)
    assert torch.equal(a, b)                                   # global RNG plays no part
    assert not torch.equal(a, s.rank_indices(4))
    assert not torch.equal(a, EpochSampler(100, 8, seed=6).rank_indices(3))
    assert a.shape == (12, 8) and len(set(a.flatten().tolist())) == 96


def test_sampler_shards_partition_the_global_batches():
    full = EpochSampler(50, 4, seed=1, world_size=1)
    r0, r1 = (EpochSampler(50, 4, seed=1, rank=r, world_size=2).rank_indices(0) for r in (0, 1))
    assert r0.shape == r1.shape == (6, 4)
    perm = full.permutation(0)
    for s in range(6):                                         # step s covers perm[8s : 8s + 8]
        assert sorted(torch.cat([r0[s], r1[s]]).tolist()) == sorted(perm[8 * s:8 * s + 8].tolist())
    with pytest.raises(ValueError, match="fewer than one global batch"):
        EpochSampler(7, 4, seed=0, world_size=2)
