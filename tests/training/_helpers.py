"""Shared tiny configs and synthetic data for the training / experiments tests."""
from __future__ import annotations

import os

import torch

from paper_repro.training import TrainConfig


def tiny_config(**overrides) -> TrainConfig:
    """Real backbone (Table 1, width 1/16 -> 8/16 channels) + real quantizer on 16x16 images."""
    d = dict(dataset="fashion_mnist", image_size=16, width=1 / 16, backbone_options={"n_res": 1},
             quantizer="vq", num_codes=32, code_dim=8, batch_size=8, epochs=2, seed=3,
             eval_metrics=["usage", "psnr"], eval_batch_size=32, num_samples=4, progress=False,
             checkpoint_every=None, num_threads=1)
    # PAPER_REPRO_TEST_DEVICE=cuda runs these tests' training on a GPU (where one is lent), with
    # deterministic algorithms: the bit-exactness they check holds there only with those
    if os.environ.get("PAPER_REPRO_TEST_DEVICE", "cpu") != "cpu":
        d.update(device=os.environ["PAPER_REPRO_TEST_DEVICE"], deterministic=True)
    d.update(overrides)
    return TrainConfig.from_dict(d)


def synthetic_images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Smooth random uint8 images (N, 3, size, size): low-frequency blobs, so the autoencoder learns."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (img * 255).round().to(torch.uint8)


def tiny_data(n_train: int = 64, n_eval: int = 32, size: int = 16):
    return synthetic_images(n_train, size, seed=1), synthetic_images(n_eval, size, seed=2)
