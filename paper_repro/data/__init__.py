"""Datasets: ``celeba_hq`` (paper Sec. 4), ``imagenet`` (Supp. 12), ``fashion_mnist`` (offline stand-in).

``build_dataset`` returns a torch ``Dataset`` whose items are float images (3, H, W) in [0, 1]
(no labels). ``load_tensor_dataset`` materialises a split as one (N, 3, H, W) **uint8** tensor for
fast GPU training (convert per batch with :func:`to_float`). Missing or malformed data raise
:class:`DatasetNotFoundError` (a ``FileNotFoundError``) saying what was expected and how to get it.

``limit`` keeps a subset of ``limit`` images: the first ``limit`` entries of a permutation drawn
with ``seed`` (then sorted), so the same (limit, seed) always gives the same images.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import fashion_mnist as _fm
from . import folders as _folders
from .errors import DatasetNotFoundError
from .idx import parse_idx, read_idx
from .synthetic import make_image_folder

DATASETS = ("celeba_hq", "imagenet", "fashion_mnist")
DEFAULT_SIZE = {"celeba_hq": 64, "imagenet": 256, "fashion_mnist": 32}

def fingerprint(name: str, root=None) -> dict:
    """Where a data set's files come from and a fingerprint of them, for run records: Fashion-MNIST's
    two IDX files by SHA-256; an image folder by the SHA-256 of its sorted file names and sizes."""
    import hashlib

    if name == "fashion_mnist":
        files = _fm.fingerprint(root)
        digest = hashlib.sha256("".join(f["sha256"] for f in files.values()).encode()).hexdigest()
        return {"dataset": name, "files": files, "fingerprint": digest[:16]}
    lister = {"celeba_hq": _folders.celeba_files}.get(name)
    if lister is None and name == "imagenet":
        r = _folders._resolve_root(root, _folders.IMAGENET_ENV, "imagenet", _folders.IMAGENET_HOW)
        paths = sorted(p for p in r.rglob("*") if p.is_file())
        base = r
    elif lister is not None:
        paths = lister(root)
        base = paths[0].parent
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{p.relative_to(base)}\t{p.stat().st_size}\n".encode())
    return {"dataset": name, "root": str(base), "files": len(paths), "fingerprint": h.hexdigest()[:16]}


def check_available(name: str, root=None, splits=("train",)) -> None:
    """Raise :class:`DatasetNotFoundError` (the loaders' own message) unless data set ``name`` can be
    read from ``root`` (or its environment variable) for ``splits``, without reading the images: a
    sweep checks this once before starting any run, instead of each run failing on its own.
    Fashion-MNIST is downloaded when absent and allowed, as training would."""
    if name == "fashion_mnist":
        for split in splits:
            if split not in _fm.SPLIT_FILE:
                raise ValueError(f"unknown fashion_mnist split {split!r}; expected one of {sorted(_fm.SPLIT_FILE)}")
            if _fm.find_file(_fm.FILES[_fm.SPLIT_FILE[split]], root) is None:
                _fm.raw_images(_fm.SPLIT_FILE[split], root)      # downloads or raises the clear error
    elif name == "celeba_hq":
        files = _folders.celeba_files(root)
        for split in splits:
            if not _folders.celeba_split(files, split):
                raise DatasetNotFoundError(f"celeba_hq: split {split!r} is empty (too few images under the root)")
    elif name == "imagenet":
        for split in splits:
            _folders.imagenet_nonempty(split, root)
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


__all__ = [
    "check_available", "fingerprint", "DATASETS", "DEFAULT_SIZE", "DatasetNotFoundError", "build_dataset", "load_tensor_dataset",
    "to_float", "subset_indices", "parse_idx", "read_idx", "make_image_folder",
]


def subset_indices(n: int, limit: int | None, seed: int = 0) -> np.ndarray | None:
    """Sorted indices of a seeded random subset of size ``limit`` (None: all ``n``)."""
    if limit is None or limit >= n:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        return None
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    g = torch.Generator().manual_seed(int(seed))
    return np.sort(torch.randperm(n, generator=g)[:limit].numpy())


def _check_common(name, image_size, augment):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise ValueError(f"image_size must be an int >= 8 or None, got {image_size!r}")
    if augment is not None and augment not in _folders.AUGMENTS:
        raise ValueError(f"unknown augment {augment!r}; expected one of {_folders.AUGMENTS} or None")


def build_dataset(name: str, split: str = "train", root=None, image_size: int | None = None,
                  augment: str | None = None, limit: int | None = None, seed: int = 0) -> Dataset:
    """Dataset of float images (3, H, W) in [0, 1].

    ``augment=None`` means: ``"official"`` for the CelebA-HQ train split, ``"none"`` otherwise
    (the official augmentation is defined for CelebA-HQ only; other datasets accept only "none").
    ``image_size=None``: ``DEFAULT_SIZE[name]`` (64 / 256 / 32).
    """
    _check_common(name, image_size, augment)
    size = image_size or DEFAULT_SIZE[name]
    if name == "fashion_mnist":
        if augment not in (None, "none"):
            raise ValueError("fashion_mnist supports only augment='none' (the official augmentation is CelebA-HQ's)")
        if split not in _fm.SPLIT_FILE:
            raise ValueError(f"unknown fashion_mnist split {split!r}; expected one of {sorted(_fm.SPLIT_FILE)}")
        n = len(_fm.raw_images(_fm.SPLIT_FILE[split], root))
        return _fm.FashionMNIST32(split, root, size, subset_indices(n, limit, seed))
    if name == "celeba_hq":
        files = _folders.celeba_split(_folders.celeba_files(root), split)
        if not files:
            raise DatasetNotFoundError(f"celeba_hq: split {split!r} is empty (too few images under the root)")
        aug = augment or ("official" if split == "train" else "none")
        transform = _folders.celeba_transform(size, aug)
    else:
        if augment not in (None, "none"):
            raise ValueError("imagenet supports only augment='none' (Resize + CenterCrop)")
        files = _folders.imagenet_files(split, root)
        transform = _folders.plain_transform(size)
    idx = subset_indices(len(files), limit, seed)
    if idx is not None:
        files = [files[i] for i in idx]
    return _folders.ImageFileDataset(files, transform)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 in [0, 1] (float input is returned as float32 unchanged)."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


def load_tensor_dataset(name: str, split: str = "train", root=None, image_size: int | None = None,
                        limit: int | None = None, seed: int = 0, dtype: torch.dtype = torch.uint8,
                        batch_size: int = 256, num_workers: int = 0) -> torch.Tensor:
    """Whole split (no augmentation) as one (N, 3, H, W) tensor, ``uint8`` by default (4x smaller
    than float; full Fashion-MNIST train is 60k x 3 x 32 x 32 = 184 MB). ``dtype=torch.float32``
    gives values in [0, 1]. Same images, same order as ``build_dataset(..., augment="none")``.
    """
    if dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"dtype must be torch.uint8 or torch.float32, got {dtype}")
    _check_common(name, image_size, None)
    size = image_size or DEFAULT_SIZE[name]
    if name == "fashion_mnist" and size == _fm.NATIVE_SIZE:
        if split not in _fm.SPLIT_FILE:
            raise ValueError(f"unknown fashion_mnist split {split!r}; expected one of {sorted(_fm.SPLIT_FILE)}")
        raw = _fm.raw_images(_fm.SPLIT_FILE[split], root)
        idx = subset_indices(len(raw), limit, seed)
        out = _fm.to_rgb32(raw if idx is None else raw[idx])
        return out if dtype == torch.uint8 else to_float(out)
    ds = build_dataset(name, split, root, size, "none", limit, seed)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    chunks = [(b * 255).round_().to(torch.uint8) if dtype == torch.uint8 else b for b in loader]
    return torch.cat(chunks)
