"""EMA statistics, usage counts and dead-code draws stay in sync across 2 processes (gloo, CPU)."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(worker, tmp_path, name: str) -> dict:
    """Spawn ``worker`` on 2 gloo processes; rank 0 saved its results to a file: load them."""
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    out = str(tmp_path / name)
    mp.spawn(worker, args=(2, _free_port(), out), nprocs=2, join=True)
    return torch.load(out, weights_only=True)


def _batches(rank: int):
    g = torch.Generator().manual_seed(100 + rank)  # different data on each process
    return [torch.randn(2, 3, 4, 4, generator=g) + rank for _ in range(3)]


def _worker(rank: int, world: int, port: int, out_path: str):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from paper_repro.quantizers import build_quantizer

        torch.manual_seed(0)
        plain = build_quantizer("ema", num_codes=16, code_dim=3, decay=0.8)
        for z in _batches(rank):
            plain(z)
        torch.manual_seed(0)  # same initial codebook everywhere
        q = build_quantizer("ema", num_codes=16, code_dim=3, decay=0.8, dead_code_threshold=0.5,
                            replacement=dict(threshold=1.0, reservoir_size=64, every="epoch"))
        torch.manual_seed(rank)  # different random draws per process
        for z in _batches(rank):
            q(z)
        q.on_epoch_end(0)  # reservoir replacement: rank 0's draws are broadcast
        q.usage.sync()
        q.usage.sync()  # idempotent
        gathered = [torch.zeros_like(q.embed) for _ in range(world)]
        dist.all_gather(gathered, q.embed)
        plain_gathered = [torch.zeros_like(plain.embed) for _ in range(world)]
        dist.all_gather(plain_gathered, plain.embed)
        if rank == 0:
            torch.save({"embeds": gathered, "plain": plain_gathered, "plain_cs": plain.cluster_size.clone(), "cluster_size": q.cluster_size.clone(),
                        "counts": q.usage.counts.clone()}, out_path)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ema_stays_in_sync_under_ddp(tmp_path):
    res = _run(_worker, tmp_path, "ddp.pt")
    e0, e1 = res["embeds"]
    assert torch.equal(e0, e1)
    # usage counts were summed over both processes: 3 batches x 32 latents x 2 processes
    assert int(res["counts"].sum()) == 2 * 3 * 32

    # the synced EMA equals one process seeing both processes' batches at once
    from paper_repro.quantizers import build_quantizer

    torch.manual_seed(0)
    ref = build_quantizer("ema", num_codes=16, code_dim=3, decay=0.8)
    for a, b in zip(_batches(0), _batches(1)):
        ref(torch.cat([a, b]))
    p0, p1 = res["plain"]
    assert torch.equal(p0, p1)
    torch.testing.assert_close(res["plain_cs"], ref.cluster_size)
    torch.testing.assert_close(p0, ref.embed)


def _replacement_worker(rank: int, world: int, port: int, out_path: str):
    """The trainer's per-step buffer broadcast (``ddp.broadcast_module(..., buffers_only=True)``)
    around a replacing quantizer whose ranks see different data."""
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from paper_repro.quantizers import build_quantizer
        from paper_repro.quantizers.stats import all_reduce_sum_
        from paper_repro.training import ddp

        torch.manual_seed(0)  # same codebook everywhere
        q = build_quantizer("vq", num_codes=16, code_dim=3, replacement=dict(threshold=1.0, reservoir_size=64, every="epoch"))
        with torch.no_grad():  # codes 0-7 near rank 0's data, 8-15 near rank 1's
            q.embedding.copy_(torch.cat([torch.randn(8, 3) * 0.1 + 10 * r for r in (0, 1)]))
        torch.manual_seed(rank)
        local = torch.zeros(16, dtype=torch.long)
        for _ in range(3):
            z = torch.randn(2, 3, 4, 4) * 0.1 + 10 * rank
            local += torch.bincount(q(z).indices.flatten(), minlength=16)
            ddp.broadcast_module(q, buffers_only=True)
        summed = all_reduce_sum_(q.replacer.counts.clone())
        every = [torch.zeros_like(local) for _ in range(world)]
        dist.all_gather(every, local)
        before = q.codebook.detach().clone()
        q.on_epoch_end(0)
        moved = (q.codebook.detach() != before).any(1)
        if rank == 0:
            torch.save({"summed": summed, "local": torch.stack(every), "moved": moved}, out_path)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_replacement_counts_sum_over_ranks_and_no_code_used_on_any_rank_is_replaced(tmp_path):
    res = _run(_replacement_worker, tmp_path, "repl.pt")
    used_anywhere = res["local"].sum(0) > 0
    assert torch.equal(res["summed"], res["local"].sum(0))
    assert used_anywhere[:8].any() and used_anywhere[8:].any()      # each rank used its own codes
    assert not (res["moved"] & used_anywhere).any()
