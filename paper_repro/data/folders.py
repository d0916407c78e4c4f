"""Image-folder datasets: CelebA-HQ (flat folder, paper Sec. 4) and ImageNet (ImageFolder, Supp. 12).

CelebA-HQ follows the authors' data code (the paper gives no split or augmentation):
files (jpg/jpeg/png, any case) of one flat folder, sorted by name, split 75/10/15 into
train/val/test (``floor(0.75 N)``, ``floor(0.10 N)``, rest). Default size 64 (what the authors'
code trains, although the paper speaks of 256x256); 256 is an option.
``augment="official"`` (default for train): RandomResizedCrop(size, scale (0.8, 1), ratio
(0.9, 1.1)), RandomRotation(10), ColorJitter(brightness 0.2, contrast 0.2),
RandomAdjustSharpness(factor 2, p 0.5) [factor and p are our choice: the facts only say
"sharpness"], ToTensor, Gaussian noise sigma 0.05 with p 0.5, then **clamped to [0, 1]** (our
departure, so every image is in [0, 1]). ``augment="none"`` (default for val/test):
Resize(size) + CenterCrop(size) + ToTensor.
Augmentation draws from the global torch RNG (seed it with ``paper_repro.utils.seed_everything``).

ImageNet: ``root/{train,val}/<class>/*.JPEG``; Resize(size) + CenterCrop(size), default 256.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms as T

from .errors import DatasetNotFoundError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CELEBA_ENV, IMAGENET_ENV = "CELEBA_HQ_DIR", "IMAGENET_DIR"
CELEBA_FRACTIONS = {"train": 0.75, "val": 0.10, "test": 0.15}
CELEBA_HQ_IMAGES = 30000          # the data set's size (00000.jpg ... 29999.jpg)
AUGMENTS = ("official", "none")


class AddGaussianNoise:
    """With probability ``p`` add N(0, sigma^2) noise to a tensor image, then clamp to [0, 1]."""

    def __init__(self, sigma: float = 0.05, p: float = 0.5):
        self.sigma, self.p = sigma, p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) < self.p:
            x = x + self.sigma * torch.randn_like(x)
        return x.clamp(0, 1)

    def __repr__(self) -> str:
        return f"AddGaussianNoise(sigma={self.sigma}, p={self.p})"


def celeba_transform(size: int, augment: str):
    if augment == "official":
        return T.Compose([
            T.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1)),
            T.RandomRotation(10),
            T.ColorJitter(brightness=0.2, contrast=0.2),
            T.RandomAdjustSharpness(2.0, p=0.5),
            T.ToTensor(),
            AddGaussianNoise(0.05, p=0.5),
        ])
    if augment == "none":
        return plain_transform(size)
    raise ValueError(f"unknown augment {augment!r} for celeba_hq; expected one of {AUGMENTS}")


def plain_transform(size: int):
    return T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor()])


def _resolve_root(root, env: str, what: str, how: str) -> Path:
    r = root if root is not None else os.environ.get(env)
    if not r:
        raise DatasetNotFoundError(f"{what}: no root given. Pass root=... or set ${env}. {how}")
    r = Path(r).expanduser()
    if not r.is_dir():
        raise DatasetNotFoundError(f"{what}: directory {r} does not exist. {how}")
    return r


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetNotFoundError(f"cannot read image {path}: {e}") from None


CELEBA_HOW = ("Expected a flat folder of CelebA-HQ images (*.jpg / *.png, e.g. 00000.jpg ... 29999.jpg). "
              "Get CelebA-HQ (30,000 images) from the CelebA-HQ / NVIDIA progressive-GAN release.")
IMAGENET_HOW = ("Expected the ImageFolder layout root/train/<class>/*.JPEG and root/val/<class>/*.JPEG "
                "(ILSVRC-2012 from image-net.org, val images sorted into class folders).")


def celeba_files(root=None) -> list[Path]:
    """Sorted image files of the CelebA-HQ flat folder (``root`` or ``$CELEBA_HQ_DIR``)."""
    r = _resolve_root(root, CELEBA_ENV, "celeba_hq", CELEBA_HOW)
    files = sorted(p for p in r.iterdir() if _is_image(p))
    if not files:
        raise DatasetNotFoundError(f"celeba_hq: no image files in {r}. {CELEBA_HOW}")
    return files


def celeba_split(files: list, split: str) -> list:
    """75/10/15 train/val/test split of the sorted file list (authors' split)."""
    if split not in CELEBA_FRACTIONS:
        raise ValueError(f"unknown celeba_hq split {split!r}; expected one of {list(CELEBA_FRACTIONS)}")
    n = len(files)
    n_train, n_val = int(0.75 * n), int(0.10 * n)
    return {"train": files[:n_train], "val": files[n_train:n_train + n_val],
            "test": files[n_train + n_val:]}[split]


class ImageFileDataset(Dataset):
    """A list of image files with a transform; items are float tensors (3, H, W) in [0, 1]."""

    def __init__(self, files: list[Path], transform):
        self.files, self.transform = list(files), transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(_load_rgb(self.files[i]))


def _imagenet_split_dir(split: str, root) -> Path:
    if split not in ("train", "val"):
        raise ValueError(f"unknown imagenet split {split!r}; expected 'train' or 'val' (no labelled test set)")
    r = _resolve_root(root, IMAGENET_ENV, "imagenet", IMAGENET_HOW)
    d = r / split
    if not d.is_dir():
        raise DatasetNotFoundError(f"imagenet: {d} does not exist. {IMAGENET_HOW}")
    return d


def imagenet_nonempty(split: str, root=None) -> None:
    """:func:`imagenet_files`'s checks, stopping at the first image instead of listing 1.28 M files."""
    d = _imagenet_split_dir(split, root)
    if not any(_is_image(p) for c in d.iterdir() if c.is_dir() for p in c.iterdir()):
        raise DatasetNotFoundError(f"imagenet: no images in class folders under {d}. {IMAGENET_HOW}")


def imagenet_files(split: str, root=None) -> list[Path]:
    d = _imagenet_split_dir(split, root)
    classes = sorted(c for c in d.iterdir() if c.is_dir())
    files = [p for c in classes for p in sorted(c.iterdir()) if _is_image(p)]
    if not files:
        raise DatasetNotFoundError(f"imagenet: no images in class folders under {d}. {IMAGENET_HOW}")
    return files
