"""LPIPS (Zhang et al. 2018, v0.1) with offline ImageNet backbones, and VGG16 features for FD-VGG16.

``lpips(a, b, net)``: a, b float (N, 3, H, W) in [0, 1]; mapped to [-1, 1] inside (the authors'
code fed [0, 1] into LPIPS, which expects [-1, 1]: a defect we do not reproduce). The network is the
``lpips`` package's own ``LPIPS`` class built with ``pnet_rand=True`` (no torchvision download)
and ``pretrained=False``; we then load the ImageNet backbone and the package's shipped v0.1 linear
layers ourselves (``weights.py``, ``weights_only=True``). Models are cached per (net, device).
"""
from __future__ import annotations

import contextlib
import io
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .weights import backbone_state, canonical_net, load_convs_into, lpips_linear_state

_MODELS: dict = {}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_images(a: torch.Tensor, name: str = "images") -> None:
    if not torch.is_tensor(a) or a.dim() != 4 or a.shape[1] != 3:
        raise ValueError(f"{name}: expected a float tensor (N, 3, H, W), got {getattr(a, 'shape', type(a))}")
    if not a.is_floating_point():
        raise ValueError(f"{name}: expected floats in [0, 1], got {a.dtype} (use paper_repro.data.to_float)")
    if not torch.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or Inf")


def check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    check_images(a, "a")
    check_images(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {tuple(a.shape)} vs {tuple(b.shape)}")


def lpips_model(net: str = "alex", device="cpu", weights_dir=None) -> nn.Module:
    """The cached, frozen, eval-mode ``lpips.LPIPS`` network with offline weights (fp32).

    Call it as ``model(x, y)`` with inputs in [-1, 1] (or ``normalize=True`` for [0, 1]); usable as
    a training loss (gradients flow to the inputs, not to the weights).
    """
    net = canonical_net(net)
    key = (net, str(torch.device(device)), str(weights_dir))
    if key not in _MODELS:
        with torch.random.fork_rng(devices=[]):    # building it must not move the seeded RNG stream
            _MODELS[key] = _build_lpips(net, device, weights_dir)
    return _MODELS[key]


def _build_lpips(net: str, device, weights_dir) -> nn.Module:
    try:
        import lpips as lpips_pkg
    except ImportError as e:
        raise ImportError("LPIPS needs the `lpips` package (pip install lpips==0.1.4)") from e
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.device("meta"):
        warnings.simplefilter("ignore")  # torchvision's deprecated `pretrained=False` argument
        # built on the meta device: no time spent on random init (VGG16's 100M-parameter
        # classifier); every tensor is then set below, and the check makes sure of it
        model = lpips_pkg.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    model = model.to_empty(device="cpu")
    model.scaling_layer = lpips_pkg.lpips.ScalingLayer()  # its constant shift/scale buffers
    backbone = backbone_state(net, weights_dir)
    load_convs_into(model.net, backbone)
    lin = lpips_linear_state(net, weights_dir)
    missing, unexpected = model.load_state_dict(lin, strict=False)
    n_set = 2 + len(backbone) + len(lin)  # scaling buffers + convs + linear layers
    uncovered = [k for k in missing if not (k.startswith(("scaling_layer.", "net.", "lins.")))]
    if unexpected or uncovered or len(model.state_dict()) != n_set + len(lin):  # lins.k aliases lin{k}
        raise RuntimeError(f"LPIPS weights did not load: uncovered {uncovered}, unexpected {unexpected}")
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def lpips(a: torch.Tensor, b: torch.Tensor, net: str = "alex", batch_size: int = 64,
          weights_dir=None) -> torch.Tensor:
    """Per-image LPIPS distance (N,) between images a, b in [0, 1] (computed on a's device, fp32)."""
    check_pair(a, b)
    model = lpips_model(net, a.device, weights_dir)
    out = [model(2 * a[i:i + batch_size].float() - 1, 2 * b[i:i + batch_size].float() - 1).flatten()
           for i in range(0, len(a), batch_size)]
    return torch.cat(out) if out else a.new_zeros(0)


class VGG16Features(nn.Module):
    """VGG16 convolution stack (torchvision layout, ImageNet weights) -> global-average-pooled
    ReLU output of the last convolution (``relu5_3``): 512 features per image.

    Input: [0, 1] images; resized bilinearly to ``resize`` x ``resize`` (224 default, ImageNet's
    size; ``None`` keeps the input size), then ImageNet mean/std normalisation.
    """

    def __init__(self, resize: int | None = 224, weights_dir=None):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        # VGG16 ("D") convolution stack, up to relu5_3 (before the last max-pool); no classifier
        self.features = make_layers(cfgs["D"])[:30]
        load_convs_into(self.features, backbone_state("vgg", weights_dir))
        self.resize = resize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False,
                              antialias=True)
        x = (x - self.mean) / self.std
        return self.features(x).mean(dim=(2, 3))


def vgg16_features_model(resize: int | None = 224, device="cpu", weights_dir=None) -> VGG16Features:
    """The cached VGG16 feature network (FD-VGG16). Built without touching the global RNG: its random
    initialisation (overwritten by the ImageNet weights) runs on a forked RNG state, so whether a
    process built it before a training run cannot change that run's numbers."""
    key = ("vgg16feat", resize, str(torch.device(device)), str(weights_dir))
    if key not in _MODELS:
        with torch.random.fork_rng(devices=[]):
            _MODELS[key] = VGG16Features(resize, weights_dir).to(device)
    return _MODELS[key]
