"""Print a fingerprint of a few float kernels (a convolution forward and backward, a GEMM, a softmax
over a seeded input), to show that two float-kernel settings really compute different last bits.

    .venv/bin/python scripts/kernel_fingerprint.py            # this machine's default kernels
    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Prescott OMP_NUM_THREADS=1 \\
        .venv/bin/python scripts/kernel_fingerprint.py        # the second pass of .ci/run (make test-kernels)
"""
import hashlib
import os

import numpy as np
import torch

g = torch.Generator().manual_seed(0)
x = torch.randn(8, 16, 32, 32, generator=g, requires_grad=True)
w = torch.randn(32, 16, 3, 3, generator=g, requires_grad=True)
y = torch.nn.functional.conv2d(x, w, padding=1)
a = torch.randn(257, 129, generator=g)
out = (y.square().mean() + (a @ a.T / 64).softmax(-1).clamp_min(1e-30).log().mean())
out.backward()
b = np.random.default_rng(0).standard_normal((129, 257))   # numpy's BLAS (the toy pages)
h = hashlib.sha256()
for t in (y.detach(), x.grad, w.grad, out.detach()):
    h.update(t.numpy().tobytes())
hn = hashlib.sha256((b @ b.T).tobytes())
env = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS")
       if k in os.environ}
print(f"kernel fingerprint {h.hexdigest()[:16]} | numpy BLAS {hn.hexdigest()[:12]} | loss {out.item():.17g} | torch threads "
      f"{torch.get_num_threads()} | ATen capability {torch.backends.cpu.get_cpu_capability()} | env {env or 'default'}")
