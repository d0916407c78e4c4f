"""Small synthetic image folders (for tests and for trying the CelebA-HQ / ImageNet code paths)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_image_folder(path, n: int = 10, size: int = 48, layout: str = "flat", classes: int = 2,
                      splits=("train", "val"), ext: str = "png", seed: int = 0) -> Path:
    """Write ``n`` random smooth RGB images.

    ``layout="flat"``: ``path/00000.ext ...`` (CelebA-HQ). ``layout="imagefolder"``:
    ``path/<split>/class<c>/<i>.ext`` for each split (ImageNet), ``n`` images per split.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)

    def img():
        base = rng.uniform(0, 255, size=(4, 4, 3))
        up = np.kron(base, np.ones((size // 4 + 1, size // 4 + 1, 1)))[:size, :size]
        return Image.fromarray(np.clip(up + rng.normal(0, 8, up.shape), 0, 255).astype(np.uint8))

    if layout == "flat":
        path.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img().save(path / f"{i:05d}.{ext}")
    elif layout == "imagefolder":
        for s in splits:
            for i in range(n):
                d = path / s / f"class{i % classes}"
                d.mkdir(parents=True, exist_ok=True)
                img().save(d / f"{i:05d}.{ext}")
    else:
        raise ValueError(f"unknown layout {layout!r}; expected 'flat' or 'imagefolder'")
    return path
