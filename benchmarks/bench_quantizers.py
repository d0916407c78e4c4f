"""Forward + backward time and peak memory of the quantizers (a benchmark, not a test).

    python benchmarks/bench_quantizers.py --out bench.csv                 # GPU: N=16,384, d=64, K in 1024/8192/65536
    python benchmarks/bench_quantizers.py --small --device cpu --out x.csv   # smoke run on CPU

Rows: vq, nsvq (paper flavour: chunked RBF kernel term + modified STE), nsvq_official, ema,
simvq, transvq, nsvq_dense (a naive reference that materialises the N x K weights and distances
with autograd), and vector-quantize-pytorch's VectorQuantize (rotation trick off) when importable.
One step = quantizer forward, ``(loss + <quantized, G>).backward()`` with a fixed upstream G.
Targets (GPU): nsvq <= 1.5x vq at K = 65,536; vq >= 2x faster than vector-quantize-pytorch.
CPU timings are smoke checks only; do not report them as results.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from paper_repro.quantizers import build_quantizer  # noqa: E402
from paper_repro.quantizers.ste import modified_straight_through  # noqa: E402


class DenseNSVQ(torch.nn.Module):
    """Naive NS-VQ (paper flavour): full N x K distances with autograd, dense weights."""

    def __init__(self, k, d, width=1.0):
        super().__init__()
        self.embedding = torch.nn.Parameter(torch.empty(k, d).uniform_(-1 / k, 1 / k))
        self.width = width

    def forward(self, z):
        b, d, h, w = z.shape
        zf = z.permute(0, 2, 3, 1).reshape(-1, d)
        c = self.embedding
        zd = zf.detach()
        dist = zd.pow(2).sum(1, keepdim=True) - 2 * zd @ c.t() + c.pow(2).sum(1)
        idx = dist.detach().argmin(1)
        wts = torch.exp(-dist.detach().clamp_min(0) / self.width)
        wts[torch.arange(len(idx), device=z.device), idx] = 0
        n = zf.shape[0]
        kernel = 0.5 * (wts * dist).sum() / (n * d)
        cq = c[idx]
        loss = F.mse_loss(cq, zd) + 0.25 * F.mse_loss(zf, cq.detach()) + kernel
        zq = modified_straight_through(zf, cq, n)
        return zq.reshape(b, h, w, d).permute(0, 3, 1, 2), loss


def make(method, k, d, device):
    if method == "nsvq_dense":
        return DenseNSVQ(k, d).to(device)
    if method == "vqpytorch":
        from vector_quantize_pytorch import VectorQuantize

        return VectorQuantize(dim=d, codebook_size=k, rotation_trick=False).to(device)
    name, opts = {
        "vq": ("vq", {}), "nsvq": ("nsvq", {}), "nsvq_official": ("nsvq", {"flavor": "official"}),
        "ema": ("ema", {}), "simvq": ("simvq", {}), "transvq": ("transvq", {}),
    }[method]
    return build_quantizer(name, num_codes=k, code_dim=d, check_finite=False, **opts).to(device)


def step(method, q, z, g):
    if method == "nsvq_dense":
        zq, loss = q(z)
    elif method == "vqpytorch":
        zl = z.permute(0, 2, 3, 1).reshape(z.shape[0], -1, z.shape[1])
        zq, _, loss = q(zl)
        zq = zq.reshape(z.shape[0], z.shape[2], z.shape[3], z.shape[1]).permute(0, 3, 1, 2)
        loss = loss.sum()
    else:
        out = q(z)
        zq, loss = out.quantized, out.loss
    (loss + (zq * g).sum()).backward()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(method, k, n, d, device, warmup, repeats):
    torch.manual_seed(0)
    q = make(method, k, d, device).train()
    side = 32 if n >= 1024 else 8
    b = max(1, n // (side * side))
    z = torch.randn(b, d, side, side, device=device, requires_grad=True)
    g = torch.randn_like(z)
    for _ in range(warmup):
        step(method, q, z, g)
        q.zero_grad(set_to_none=True)
        z.grad = None
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        step(method, q, z, g)
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
        q.zero_grad(set_to_none=True)
        z.grad = None
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else float("nan")
    return statistics.median(times), min(times), peak, b * side * side


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="CSV path to write")
    ap.add_argument("--small", action="store_true", help="CPU-sized smoke run (N=1024, d=16, K in 64/256/1024)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--ks", type=int, nargs="+", default=[1024, 8192, 65536])
    ap.add_argument("--methods", nargs="+", default=["vq", "nsvq", "nsvq_official", "ema", "simvq",
                                                      "transvq", "nsvq_dense", "vqpytorch"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    if args.small:
        args.n, args.d, args.ks, args.repeats, args.warmup = 1024, 16, [64, 256, 1024], 3, 1
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    for k in args.ks:
        for m in args.methods:
            try:
                med, best, peak, n = bench(m, k, args.n, args.d, device, args.warmup, args.repeats)
                rows.append(dict(method=m, K=k, N=n, d=args.d, ms_median=round(med, 3), ms_min=round(best, 3),
                                 peak_mib=round(peak, 1), device=str(device), note=""))
            except ImportError as e:
                rows.append(dict(method=m, K=k, N=args.n, d=args.d, ms_median="", ms_min="", peak_mib="",
                                 device=str(device), note=f"not importable: {e.name}"))
            except torch.OutOfMemoryError:
                rows.append(dict(method=m, K=k, N=args.n, d=args.d, ms_median="", ms_min="", peak_mib="",
                                 device=str(device), note="out of memory"))
                torch.cuda.empty_cache()
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    kmax = max(args.ks)
    t = {r["method"]: r["ms_median"] for r in rows if r["K"] == kmax and r["ms_median"] != ""}
    if "vq" in t and "nsvq" in t:
        print(f"K={kmax}: nsvq / vq = {t['nsvq'] / t['vq']:.2f} (target <= 1.5)")
    if "vq" in t and "vqpytorch" in t:
        print(f"K={kmax}: vector-quantize-pytorch / vq = {t['vqpytorch'] / t['vq']:.2f} (target >= 2)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
