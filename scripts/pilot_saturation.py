"""Why some pilot runs end with a dead decoder: the decoder's Tanh saturation in the first steps.

Trains the pilot's config (vq, seed 1: a run whose decoder died) for 300 steps without and with the
500-step learning-rate warm-up of the ``cpu`` profile and records, per step, the decoder's pre-Tanh
activations and the codes used per batch (``paper_repro.experiments.pilot.saturation_study``).
Writes ``data/results/pilot_saturation/cpu.csv`` and ``cpu.provenance.json`` beside it; the pilot
page plots them. About a minute on one CPU thread.

    python scripts/pilot_saturation.py [--quantizer vq] [--seed 1] [--steps 300]
"""
from __future__ import annotations

import argparse
import json
import time


def main(argv=None):
    from paper_repro.experiments.pilot import saturation_study
    from paper_repro.paths import RESULTS_DIR
    from paper_repro.provenance import provenance

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quantizer", default="vq")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default=str(RESULTS_DIR / "pilot_saturation"))
    args = ap.parse_args(argv)
    from pathlib import Path
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    study = saturation_study(args.quantizer, args.seed, steps=args.steps)
    prov = provenance("cpu", seed=args.seed)
    prov["settings"] = {"quantizer": args.quantizer, "seed": args.seed, "steps": args.steps,
                        "warmups": sorted(study["warmup"].unique().tolist()), "width": 0.25,
                        "num_codes": 1024, "code_dim": 64, "batch_size": 16, "lr": 5e-4}
    prov["seconds"] = time.perf_counter() - t0
    study.to_csv(out / "cpu.csv", index=False, float_format="%.6g")
    (out / "cpu.provenance.json").write_text(json.dumps(prov, indent=2, default=str))
    print(study.groupby("warmup")[["saturated", "batch_codes"]].describe().round(3).to_string())


if __name__ == "__main__":
    main()
