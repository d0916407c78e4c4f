"""Measure how far re-runs of committed runs move under other float kernels, and under other seeds.

For each run of ``paper_repro.experiments.reproduce.REPRODUCTION_SAMPLE`` this re-trains the
committed config in a fresh process under several settings and compares each re-run with the
record (the trace points and the final metrics):

- ``same kernels``: the settings the record was made with (1 thread, this machine's kernels);
- ``ATEN_CPU_CAPABILITY=default``: ATen's non-vectorised kernels;
- ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN convolutions without AVX-512 (where the CPU has it);
- ``2 threads``: another thread count (other reduction orders);
- ``seed 1`` / ``seed 2``: the same config with another seed (the scale of a real change).

Writes ``data/results/kernel_spread/<profile>.csv`` (one row per run, setting and quantity) and a
``.provenance.json`` beside it; the reproduction test's tolerances are checked against this file.

``--other-cpu``, on a machine other than the one that made the records: re-trains the sample once
with that machine's default kernels and writes ``<profile>.other-cpu-<cpu>.csv`` (setting "another
CPU: <model>"), which the reproduction test checks the tolerances against as well.

    .venv/bin/python scripts/kernel_spread.py [--profile ci] [--out DIR] [--other-cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from paper_repro.experiments import reproduce  # noqa: E402
from paper_repro.paths import RESULTS_DIR  # noqa: E402

SETTINGS = reproduce.SPREAD_SETTINGS

_CHILD = """
import json, sys
from paper_repro.experiments import reproduce
rec = json.load(open(sys.argv[1]))
over = json.loads(sys.argv[2])
threads = over.pop("num_threads", None)
new = reproduce.retrain(rec, num_threads=threads, **over)
json.dump(new, open(sys.argv[3], "w"))
"""


def rerun(record: dict, env: dict, overrides: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(record))
        e = dict(os.environ, **env, PYTHONPATH=str(REPO))
        subprocess.run([sys.executable, "-c", _CHILD, str(src), json.dumps(overrides), str(dst)],
                       check=True, env=e, cwd=REPO)
        return json.loads(dst.read_text())


def main(argv=None):
    import pandas as pd
    from tqdm.auto import tqdm

    from paper_repro.provenance import provenance

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "kernel_spread")
    ap.add_argument("--other-cpu", action="store_true",
                    help="only this machine's default kernels, labelled as another CPU (see above)")
    args = ap.parse_args(argv)
    prov = provenance("cpu")
    settings = SETTINGS
    stem = args.profile
    if args.other_cpu:
        import re

        import torch
        model = re.sub(r"^cpu: | \(\d+ threads?\)$", "", str(prov.get("device", "unknown CPU")))
        model += f", {torch.backends.cpu.get_cpu_capability()}"          # the kernels ATen dispatches to
        settings = {f"{reproduce.OTHER_CPU}: {model}": SETTINGS["same kernels"]}
        stem = f"{args.profile}.other-cpu-" + re.sub(r"[^a-z0-9]+", "-", str(model).lower()).strip("-")
    prov["settings"] = {k: {"env": e, "overrides": o} for k, (e, o) in settings.items()}
    sample = [s for s in reproduce.REPRODUCTION_SAMPLE if s[1] == args.profile]
    rows = []
    jobs = [(s, name) for s in sample for name in settings]
    for (grid, profile, fields), name in tqdm(jobs, desc="re-runs", unit="run"):
        rec = reproduce.find_record(grid, profile, fields)
        env, over = settings[name]
        new = rerun(rec, env, over)
        dev = reproduce.deviations(new, rec)
        label = f"{grid}/{rec['config']['quantizer']}" + (f" ({rec['config']['tag']})" if rec["config"].get("tag") else "")
        for r in dev.itertuples():
            rows.append({"run": label, "config_hash": rec["config_hash"], "setting": name,
                         "kind": r.kind, "quantity": r.quantity, "record": r.record, "value": r.ours,
                         "abs_diff": r.abs_diff, "rel_diff": r.rel_diff})
    args.out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(args.out / f"{stem}.csv", index=False, float_format="%.9g")
    (args.out / f"{stem}.provenance.json").write_text(json.dumps(prov, indent=2, default=str))
    print(df.groupby(["kind", "setting"])["rel_diff"].max().unstack().to_string())
    print(f"wrote {args.out / (stem + '.csv')}")


if __name__ == "__main__":
    main()
