"""Two-process DDP (gloo, CPU): ranks end identical (parameters, EMA buffers, usage counts), and the
result equals one process trained on the same global batches (gradient of the global-batch mean)."""
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from paper_repro.training import CHECKPOINT_NAME, load_checkpoint, train

from ._helpers import tiny_config, tiny_data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world, port, cfg_jsons, out_dir):
    """One rank, as torchrun would start it. The process group is created once here (trainer sees
    it initialised and leaves it alone): re-creating a group on the same port between two runs can
    hang, and a short timeout turns any hang into a failure."""
    from datetime import timedelta

    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        for i, cfg_json in enumerate(cfg_jsons):
            _train_rank(rank, cfg_json, os.path.join(out_dir, str(i)))
    finally:
        dist.destroy_process_group()


def _train_rank(rank, cfg_json, out_dir):
    from paper_repro.training import TrainConfig
    cfg = TrainConfig.from_dict(json.loads(cfg_json))
    captured = {}

    def factory(c):
        from paper_repro.training import build_model
        captured["model"] = build_model(c)
        return captured["model"]
    rec = train(cfg, run_dir=os.path.join(out_dir, "run"), data=tiny_data(), model_factory=factory)
    m = captured["model"]
    torch.save({"state": {k: v.detach().clone() for k, v in m.state_dict().items()},
                "usage": m.quantizer.usage.counts.clone(), "record": json.dumps(rec)},
               os.path.join(out_dir, f"rank{rank}.pt"))


QUANTIZERS = ("vq", "ema")


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    """Both quantizers trained by one pair of gloo processes (one spawn: it dominates the cost)."""
    tmp = tmp_path_factory.mktemp("ddp")
    # two gloo ranks on the CPU, also under PAPER_REPRO_TEST_DEVICE=cuda (one lent GPU has no rank 1)
    cfgs = [tiny_config(quantizer=q, batch_size=4, checkpoint_every=5, device="cpu")
            for q in QUANTIZERS]  # global batch 8
    for i in range(len(cfgs)):
        os.makedirs(tmp / str(i))
    mp.spawn(_rank_main, args=(2, _free_port(), [json.dumps(c.to_dict()) for c in cfgs], str(tmp)),
             nprocs=2, join=True)
    return {q: (cfgs[i], tmp / str(i),
                [torch.load(tmp / str(i) / f"rank{r}.pt", weights_only=True) for r in (0, 1)])
            for i, q in enumerate(QUANTIZERS)}


@pytest.mark.slow
@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_two_ranks_end_identical_and_match_one_process(two_rank_runs, quantizer):
    cfg, tmp_path, (r0, r1) = two_rank_runs[quantizer]
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    assert torch.equal(r0["usage"], r1["usage"])
    # summed over ranks: every training latent of every rank counted once (16 steps x 8 images x 4x4)
    assert int(r0["usage"].sum()) == 16 * 8 * 16
    rec = json.loads(r0["record"])
    assert rec["provenance"]["world_size"] == 2 and rec["steps"] == 16
    assert json.loads(r1["record"]) is None           # only rank 0 evaluates / writes
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["state"]["global_step"] == 16
    # one process, batch 8, same global batches: same gradients up to float rounding
    if quantizer == "vq":
        single = {}

        def factory(c):
            from paper_repro.training import build_model
            single["m"] = build_model(c)
            return single["m"]
        train(cfg.replace(batch_size=8), data=tiny_data(), model_factory=factory)
        ref = single["m"].state_dict()
        for k in ref:
            if ref[k].is_floating_point():
                assert torch.allclose(ref[k], r0["state"][k], atol=2e-5, rtol=1e-4), k
        assert torch.equal(single["m"].quantizer.usage.counts, r0["usage"])
