"""Training throughput of the sweeps on this CPU, against its fp32 limit (a benchmark, not a test).

    python benchmarks/bench_training.py                 # width 1/4, K = 1024, D = 64, batch 16, 32x32
    python benchmarks/bench_training.py --steps 60 --out /tmp/x   # quicker

Each variant trains the real code path (``paper_repro.training.train``: Table-1 backbone, vq, Adam,
the trainer's per-step checks) for ``--steps`` optimiser steps on in-memory images, in fresh
processes, all variants in one run so they are compared side by side:

- ``eager, 2 threads x 1 run`` (the reference) and ``channels_last, 2 threads x 1 run``;
- ``eager, 1 thread x 2 runs`` and ``channels_last, 1 thread x 2 runs``: two processes at once,
  as a sweep with ``--jobs 2 --threads-per-job 1`` runs them (aggregate = the sum).

The limit: the training step's FLOPs per image (torch's FLOP counter, forward + backward) times the
aggregate images/s, over the machine's 2-thread SGEMM rate (a 2048 x 2048 matmul). Writes
``data/results/bench_training/<device>.csv`` with ``.provenance.json`` beside it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

VARIANTS = {  # name -> (threads per run, runs at once, channels_last)
    "eager, 2 threads x 1 run": (2, 1, False),
    "channels_last, 2 threads x 1 run": (2, 1, True),
    "eager, 1 thread x 2 runs": (1, 2, False),
    "channels_last, 1 thread x 2 runs": (1, 2, True),
}


def _config(steps: int, width: float, threads: int, channels_last: bool, seed: int = 0):
    from paper_repro.training import TrainConfig
    return TrainConfig(quantizer="vq", num_codes=1024, code_dim=64, width=width, image_size=32, batch_size=16,
                       epochs=1, max_steps=steps, eval_metrics=["usage"], num_samples=0, progress=False,
                       checkpoint_every=None, num_threads=threads, channels_last=channels_last, seed=seed)


def child(steps: int, width: float, threads: int, channels_last: bool, seed: int) -> None:
    """One run in this process: print its training images/s (warm-up steps excluded)."""
    import torch

    from paper_repro.training import train
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (steps * 16 + 64, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = (imgs, imgs[:64])
    warm = 20
    train(_config(warm, width, threads, channels_last, seed), data=data)        # warm-up (allocations)
    rec = train(_config(steps, width, threads, channels_last, seed), data=data)
    print(json.dumps({"images_per_s": rec["images_per_s"], "train_seconds": rec["train_seconds"]}))


def flops_per_image(width: float) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from paper_repro.training.trainer import build_model
    model = build_model(_config(1, width, 1, False))
    x = torch.rand(16, 3, 32, 32)
    with FlopCounterMode(display=False) as fc:
        out = model(x)
        (torch.nn.functional.mse_loss(out["recon"], x) + out["quantizer_output"].loss).backward()
    return fc.get_total_flops() / 16


def sgemm_gflops(threads: int = 2, n: int = 2048, reps: int = 10) -> float:
    code = (f"import torch,time; torch.set_num_threads({threads}); a=torch.randn({n},{n}); b=torch.randn({n},{n}); "
            f"[a@b for _ in range(3)]; t=time.perf_counter(); [a@b for _ in range({reps})]; "
            f"print(2*{n}**3*{reps}/(time.perf_counter()-t)/1e9)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def run_variant(name: str, steps: int, width: float) -> dict:
    threads, runs, cl = VARIANTS[name]
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO_ROOT)}
    import os
    procs = [subprocess.Popen([sys.executable, __file__, "--child", str(steps), str(width), str(threads),
                               str(int(cl)), str(seed)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, **env)) for seed in range(runs)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"{name}: a run failed")
    per_run = [o["images_per_s"] for o in outs]
    return {"variant": name, "threads_per_run": threads, "runs_at_once": runs, "channels_last": cl,
            "images_per_s_per_run": sum(per_run) / runs, "aggregate_images_per_s": sum(per_run)}


def main(argv=None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        return child(int(a[0]), float(a[1]), int(a[2]), bool(int(a[3])), int(a[4]))
    import pandas as pd

    from paper_repro.paths import RESULTS_DIR
    from paper_repro.provenance import provenance

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "bench_training")
    args = ap.parse_args(argv)
    prov = provenance("cpu")
    peak = sgemm_gflops()
    fpi = flops_per_image(args.width)
    prov["setup"] = {"steps": args.steps, "width": args.width, "batch_size": 16, "image_size": 32,
                     "num_codes": 1024, "code_dim": 64, "quantizer": "vq", "sgemm_gflops_2_threads": peak,
                     "gflop_per_image": fpi / 1e9}
    rows = [run_variant(v, args.steps, args.width) for v in VARIANTS]
    df = pd.DataFrame(rows)
    ref = df.loc[df.variant == next(iter(VARIANTS)), "aggregate_images_per_s"].item()
    df["speed-up"] = df["aggregate_images_per_s"] / ref
    df["GFLOP/s"] = df["aggregate_images_per_s"] * fpi / 1e9
    df["share of SGEMM peak"] = df["GFLOP/s"] / peak
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cpu-2cores"
    df.to_csv(args.out / f"{name}.csv", index=False, float_format="%.6g")
    (args.out / f"{name}.provenance.json").write_text(json.dumps(prov, indent=2, default=str))
    print(f"SGEMM 2 threads: {peak:.0f} GFLOP/s; {fpi / 1e9:.3f} GFLOP per image (fwd + bwd)")
    print(df.round(3).to_string(index=False))
    print(f"wrote {args.out / (name + '.csv')}")


if __name__ == "__main__":
    main()
