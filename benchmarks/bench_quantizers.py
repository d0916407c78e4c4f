"""Forward + backward time and peak memory of the quantizers (a benchmark, not a test).

    python benchmarks/bench_quantizers.py            # N=16,384, d=64, K in 1024/8192/65536, GPU if present
    python benchmarks/bench_quantizers.py --small --device cpu --out /tmp/x.csv   # smoke run

Writes data/results/bench_quantizers/<device>.csv and <device>.provenance.json (commit, versions,
device, date, setup); the book's performance page reads every such pair.

Rows: vq, nsvq (paper flavour: chunked RBF kernel term + modified STE), nsvq_official, ema,
simvq, transvq, nsvq_dense (a naive reference that materialises the N x K weights and distances
with autograd), and vector-quantize-pytorch's VectorQuantize (rotation trick off) when importable.
One step = quantizer forward, ``(loss + <quantized, G>).backward()`` with a fixed upstream G.
Targets (GPU): nsvq <= 1.5x vq at K = 65,536; vq >= 2x faster than vector-quantize-pytorch.
On the CPU each measurement runs in its own process (peak memory = resident-set high-water mark
above the inputs; an out-of-memory kill costs one row). CPU tables are labelled as such wherever
they are shown: they measure arithmetic cost, not the GPU targets.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from paper_repro.provenance import provenance  # noqa: E402
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


METHODS = ("vq", "nsvq", "nsvq_official", "ema", "simvq", "transvq", "nsvq_dense", "vqpytorch")


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


def _cpu_peak_reset() -> float:
    """Reset the process's resident-set high-water mark (Linux) and return the current RSS in MiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _proc_status_mib("VmRSS")


def _proc_status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench(method, k, n, d, device, warmup, repeats):
    """Median and best wall time (ms) of one step, and the peak memory above the inputs (MiB):
    CUDA allocator peak on the GPU, resident-set high-water mark on the CPU (Linux)."""
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
    else:
        base = _cpu_peak_reset()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        step(method, q, z, g)
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
        q.zero_grad(set_to_none=True)
        z.grad = None
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        peak = _proc_status_mib("VmHWM") - base
    return statistics.median(times), min(times), peak, b * side * side


def measure(method, k, args, device) -> dict:
    """One row of the table; errors that the table should show become a note."""
    row = dict(method=method, K=k, N=args.n, d=args.d, ms_median="", ms_min="", peak_mib="",
               device=str(device), note="")
    try:
        med, best, peak, n = bench(method, k, args.n, args.d, device, args.warmup, args.repeats)
        row.update(N=n, ms_median=round(med, 3), ms_min=round(best, 3), peak_mib=round(peak, 1))
    except ImportError as e:
        row["note"] = f"not importable: {e.name}"
    except torch.OutOfMemoryError:
        row["note"] = "out of memory"
        torch.cuda.empty_cache()
    return row


def measure_isolated(method, k, args) -> dict:
    """Run one measurement in a fresh process, so that peak memory is its own and an
    out-of-memory kill costs one row, not the table."""
    cmd = [sys.executable, __file__, "--one", method, str(k), "--device", args.device,
           "--n", str(args.n), "--d", str(args.d), "--warmup", str(args.warmup),
           "--repeats", str(args.repeats), "--threads", str(args.threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == 0:
        return json.loads(p.stdout.strip().splitlines()[-1])
    why = "killed (out of memory?)" if p.returncode in (-9, 137) else f"failed: {p.stderr.strip()[-200:]}"
    return dict(method=method, K=k, N=args.n, d=args.d, ms_median="", ms_min="", peak_mib="",
                device=args.device, note=why)


def default_out(device: torch.device, threads: int) -> Path:
    if device.type == "cuda":
        name = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    else:
        name = f"cpu-{threads}threads"
    return REPO_ROOT / "data" / "results" / "bench_quantizers" / f"{name}.csv"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="CSV path (default data/results/bench_quantizers/<device>.csv); "
                                  "provenance goes beside it as <name>.provenance.json")
    ap.add_argument("--small", action="store_true", help="CPU-sized smoke run (N=1024, d=16, K in 64/256/1024)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--ks", type=int, nargs="+", default=[1024, 8192, 65536])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    ap.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                    help="one process per measurement (default: on for cpu, off for cuda)")
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "K"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.small:
        args.n, args.d, args.ks, args.repeats, args.warmup = 1024, 16, [64, 256, 1024], 3, 1
    bad = sorted(set(args.methods) - set(METHODS))
    if bad:
        ap.error(f"unknown method(s) {bad}; choose from {list(METHODS)}")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args, device)), flush=True)
        return
    isolate = device.type == "cpu" if args.isolate is None else args.isolate
    out = Path(args.out) if args.out else default_out(device, args.threads)
    # provenance as of the start: the code measured is the code checked out now
    setup = {k: getattr(args, k) for k in ("n", "d", "ks", "methods", "warmup", "repeats", "threads", "small")}
    prov = provenance(str(device), benchmark="bench_quantizers", setup=setup, isolated=isolate,
                      tf32=False if device.type == "cuda" else None, command=" ".join(sys.argv))
    try:
        prov["versions"]["vector-quantize-pytorch"] = metadata.version("vector-quantize-pytorch")
    except metadata.PackageNotFoundError:
        pass
    rows = []
    for k in args.ks:
        for m in args.methods:
            rows.append(measure_isolated(m, k, args) if isolate else measure(m, k, args, device))
            print(json.dumps(rows[-1]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out.with_suffix(".provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
    kmax = max(args.ks)
    t = {r["method"]: r["ms_median"] for r in rows if r["K"] == kmax and r["ms_median"] != ""}
    if "vq" in t and "nsvq" in t:
        print(f"K={kmax}: nsvq / vq = {t['nsvq'] / t['vq']:.2f} (target <= 1.5)")
    if "vq" in t and "vqpytorch" in t:
        print(f"K={kmax}: vector-quantize-pytorch / vq = {t['vqpytorch'] / t['vq']:.2f} (target >= 2)")
    print(f"wrote {out} and {out.with_suffix('.provenance.json').name}")


if __name__ == "__main__":
    main()
