"""Fashion-MNIST as the offline stand-in for CelebA-HQ (70k real 28x28 grey images, MIT licence).

Each image is zero-padded 28 -> 32 (2 px each side) and replicated to 3 channels, giving
(3, 32, 32) floats in [0, 1] (``image_size`` other than 32 resizes bilinearly with antialiasing).

Splits (our decision): ``train`` = the 60,000 official training images; ``test`` = the 10,000
official test images; ``val`` = the same 10,000 test images. The paper trains for a fixed number of
epochs and reports on its validation set, which is never used for model selection, so a separate
validation carve-out would only shrink the training set; ``val`` is the held-out evaluation split.

Files (``train-images-idx3-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``.gz`` optional) are looked
up in the folder named by the ``root`` argument (the config's ``data_root``) or, without one, by
``$FASHION_MNIST_DIR``: a named folder is the only place looked in, and a missing folder or file
there is an error. With no folder named: ``/usr/share/datasets/fashion-mnist`` (Debian package
``dataset-fashion-mnist``), ``<repo>/.data/fashion-mnist``, each also in torchvision's
``FashionMNIST/raw`` sub-layout; failing that torchvision downloads them into
``<repo>/.data/fashion-mnist`` (needs internet). :func:`fingerprint` names the files used and their
SHA-256, for the run record.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..paths import REPO_ROOT
from .errors import DatasetNotFoundError
from .idx import read_idx

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = REPO_ROOT / ".data" / "fashion-mnist"
FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
SPLIT_FILE = {"train": "train", "val": "test", "test": "test"}
SPLIT_SIZE = {"train": 60_000, "val": 10_000, "test": 10_000}
NATIVE_SIZE = 32
_CACHE: dict[str, np.ndarray] = {}


def explicit_dir(root: str | Path | None = None) -> Path | None:
    """The folder the user named (``root``, else ``$FASHION_MNIST_DIR``), or None. A named folder
    is the only place looked in: a missing one is an error, never a silent fall-back."""
    r = root if root is not None else os.environ.get(ENV_VAR) or None
    if r is None:
        return None
    d = Path(r).expanduser()
    if not d.is_dir():
        src = "data_root" if root is not None else f"${ENV_VAR}"
        raise DatasetNotFoundError(f"fashion_mnist: {src} = {d} is not a folder. Expected a folder holding "
                                   f"{FILES['train']}.gz and {FILES['test']}.gz (e.g. {DEBIAN_DIR}).")
    return d


def candidate_dirs(root: str | Path | None = None) -> list[Path]:
    named = explicit_dir(root)
    dirs = [named] if named is not None else [DEBIAN_DIR, CACHE_DIR]
    return [p for d in dirs for p in (d, d / "FashionMNIST" / "raw")]


def find_file(stem: str, root: str | Path | None = None) -> Path | None:
    for d in candidate_dirs(root):
        for name in (stem + ".gz", stem):
            if (d / name).is_file():
                return d / name
    return None


def _download(root: str | Path | None) -> None:
    target = Path(root) if root is not None else CACHE_DIR
    try:
        from torchvision.datasets import FashionMNIST

        for train in (True, False):
            FashionMNIST(str(target), train=train, download=True)
    except Exception as e:  # no internet, no torchvision, ...
        raise DatasetNotFoundError(
            "Fashion-MNIST not found. Expected the IDX files train-images-idx3-ubyte.gz and "
            "t10k-images-idx3-ubyte.gz in the `root` argument, in $FASHION_MNIST_DIR, in "
            f"{DEBIAN_DIR} (Debian: `apt-get install dataset-fashion-mnist`) or in {CACHE_DIR}; "
            f"the torchvision download into {target} failed too ({type(e).__name__}: {e})."
        ) from None


def raw_images(file_split: str, root: str | Path | None = None) -> np.ndarray:
    """(N, 28, 28) uint8 of the official ``train`` or ``test`` file (parsed once, then cached)."""
    stem = FILES[file_split]
    path = find_file(stem, root)
    named = explicit_dir(root)
    if path is None and named is not None:
        raise DatasetNotFoundError(f"fashion_mnist: {named} has no {stem}.gz (nor {stem}, nor "
                                   f"FashionMNIST/raw/{stem}.gz); it must hold both {FILES['train']}.gz "
                                   f"and {FILES['test']}.gz")
    if path is None:
        _download(root)
        path = find_file(stem, root)
        if path is None:
            raise DatasetNotFoundError(f"Fashion-MNIST file {stem}.gz still missing after download")
    key = str(path.resolve())
    if key not in _CACHE:
        arr = read_idx(path)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (28, 28):
            raise DatasetNotFoundError(f"{path}: expected uint8 images (N, 28, 28), got {arr.dtype} {arr.shape}")
        _CACHE[key] = arr
    return _CACHE[key]


def to_rgb32(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 3, 32, 32) uint8: pad 2 px with 0 each side, replicate channels."""
    x = torch.as_tensor(np.asarray(images))
    x = F.pad(x, (2, 2, 2, 2), value=0)
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def resize_float(x: torch.Tensor, image_size: int | None) -> torch.Tensor:
    if image_size is None or image_size == x.shape[-1]:
        return x
    squeeze = x.dim() == 3
    x = x[None] if squeeze else x
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                      align_corners=False).clamp_(0, 1)
    return x[0] if squeeze else x


class FashionMNIST32(Dataset):
    """Fashion-MNIST padded to 32x32, 3 channels, float in [0, 1]; items are image tensors only."""

    def __init__(self, split: str = "train", root=None, image_size: int | None = None,
                 indices: np.ndarray | None = None):
        if split not in SPLIT_FILE:
            raise ValueError(f"unknown fashion_mnist split {split!r}; expected one of {sorted(SPLIT_FILE)}")
        self.split, self.image_size = split, image_size
        imgs = raw_images(SPLIT_FILE[split], root)
        self.images = imgs if indices is None else imgs[np.asarray(indices)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = to_rgb32(self.images[i][None])[0].float().div_(255)
        return resize_float(x, self.image_size)


_DIGESTS: dict[str, str] = {}


def fingerprint(root: str | Path | None = None) -> dict:
    """Where the files come from and the SHA-256 of each (computed once per file and process)."""
    import hashlib

    out = {}
    for split, stem in FILES.items():
        path = find_file(stem, root)
        if path is None:
            raw_images(split, root)          # downloads or raises the clear error
            path = find_file(stem, root)
        key = str(path.resolve())
        if key not in _DIGESTS:
            _DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        out[split] = {"path": key, "sha256": _DIGESTS[key]}
    return out
