"""Data: IDX parser, Fashion-MNIST stand-in, CelebA-HQ / ImageNet folders, errors."""
import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from paper_repro.data import (
    DatasetNotFoundError, build_dataset, check_available, load_tensor_dataset, make_image_folder, parse_idx, read_idx,
    subset_indices, to_float,
)
from paper_repro.data import fashion_mnist as fm


def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def test_idx_parser_roundtrip_uint8_gz_and_int32_raw(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(a, 0x08)))
    b = np.array([1, -2, 70000, -(2**31)], dtype=np.int32)
    (tmp_path / "b").write_bytes(idx_bytes(b, 0x0C))
    ra, rb = read_idx(tmp_path / "a.gz"), read_idx(tmp_path / "b")
    assert ra.dtype == np.uint8 and np.array_equal(ra, a)
    assert rb.dtype == np.int32 and np.array_equal(rb, b)  # big-endian decoded correctly


def test_idx_parser_rejects_malformed():
    a = np.zeros((2, 2), dtype=np.uint8)
    with pytest.raises(DatasetNotFoundError, match="magic"):
        parse_idx(b"\x01\x00\x08\x02" + b"\x00" * 12)
    with pytest.raises(DatasetNotFoundError, match="payload"):
        parse_idx(idx_bytes(a, 0x08)[:-1])
    with pytest.raises(DatasetNotFoundError, match="not found"):
        read_idx("/nonexistent/x.gz")


@pytest.fixture
def tiny_fmnist(tmp_path):
    rng = np.random.default_rng(0)
    tr = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    te = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(tr, 0x08)))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(te, 0x08))
    return tmp_path, tr, te


def test_fashion_mnist_pad_and_replicate(tiny_fmnist):
    root, tr, te = tiny_fmnist
    ds = build_dataset("fashion_mnist", "train", root=root)
    assert len(ds) == 7
    x = ds[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x[0], x[2]) and torch.equal(x[0], x[1])
    assert x[:, :2].abs().sum() == 0 and x[:, -2:].abs().sum() == 0 and x[:, :, :2].abs().sum() == 0
    assert torch.allclose(x[0, 2:30, 2:30], torch.from_numpy(tr[3]).float() / 255)
    assert len(build_dataset("fashion_mnist", "val", root=root)) == 3  # val = official test set
    t = load_tensor_dataset("fashion_mnist", "test", root=root)
    assert t.dtype == torch.uint8 and t.shape == (3, 3, 32, 32)
    assert torch.equal(to_float(t), torch.stack([build_dataset("fashion_mnist", "test", root=root)[i] for i in range(3)]))
    r = build_dataset("fashion_mnist", "train", root=root, image_size=16)[0]
    assert r.shape == (3, 16, 16) and 0 <= r.min() and r.max() <= 1
    with pytest.raises(ValueError, match="augment"):
        build_dataset("fashion_mnist", root=root, augment="official")


def test_fashion_mnist_real_files_statistics():
    stem = fm.FILES["train"]
    assert fm.find_file(stem) is not None, (
        "Fashion-MNIST IDX files missing: apt-get install dataset-fashion-mnist "
        "(or set FASHION_MNIST_DIR); the ci profile needs them")
    raw = fm.raw_images("train")
    assert raw.shape == (60_000, 28, 28) and fm.raw_images("test").shape == (10_000, 28, 28)
    # Published normalisation constant of Fashion-MNIST train: mean 0.2860, std 0.3530.
    m = raw.mean(dtype=np.float64) / 255
    s = (raw / 255.0).std()
    assert abs(m - 0.2860) < 5e-4 and abs(s - 0.3530) < 5e-4
    x = load_tensor_dataset("fashion_mnist", "train", limit=512, seed=0)
    assert x.shape == (512, 3, 32, 32)
    assert torch.equal(x, load_tensor_dataset("fashion_mnist", "train", limit=512, seed=0))
    assert not torch.equal(x, load_tensor_dataset("fashion_mnist", "train", limit=512, seed=1))


def test_subset_indices():
    a = subset_indices(100, 10, seed=3)
    assert len(a) == 10 and len(set(a.tolist())) == 10 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, subset_indices(100, 10, seed=3))
    assert subset_indices(100, None) is None and subset_indices(100, 200) is None
    with pytest.raises(ValueError):
        subset_indices(100, 0)


def test_celeba_split_sizes_disjoint_and_sorted(tmp_path):
    root = make_image_folder(tmp_path / "celeba", n=20, size=40)
    parts = {s: build_dataset("celeba_hq", s, root=root, augment="none") for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [15, 2, 3]
    all_files = parts["train"].files + parts["val"].files + parts["test"].files
    assert all_files == sorted(all_files) and len(set(all_files)) == 20
    x = parts["val"][0]
    assert x.shape == (3, 64, 64) and 0 <= x.min() and x.max() <= 1
    # "none" = Resize + CenterCrop + ToTensor, checked against PIL directly (square image: resize only)
    im = Image.open(parts["val"].files[0]).convert("RGB").resize((64, 64), Image.BILINEAR)
    ref = torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255
    assert (x - ref).abs().max() < 2 / 255


def test_celeba_official_augmentation_and_env(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "c", n=8, size=48)
    monkeypatch.setenv("CELEBA_HQ_DIR", str(root))
    ds = build_dataset("celeba_hq", "train", image_size=32)  # root from env; official aug by default
    torch.manual_seed(0)
    a = ds[0]
    torch.manual_seed(1)
    b = ds[0]
    assert a.shape == (3, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(a, b)  # random augmentation
    torch.manual_seed(0)
    assert torch.equal(a, ds[0])  # but seeded
    t = load_tensor_dataset("celeba_hq", "train", image_size=32)
    plain = build_dataset("celeba_hq", "train", image_size=32, augment="none")
    assert t.dtype == torch.uint8 and t.shape == (6, 3, 32, 32)
    assert (to_float(t[2]) - plain[2]).abs().max() <= 0.5 / 255 + 1e-6


def test_celeba_missing_or_malformed(tmp_path, monkeypatch):
    monkeypatch.delenv("CELEBA_HQ_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match="CELEBA_HQ_DIR"):
        build_dataset("celeba_hq")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        build_dataset("celeba_hq", root=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no image files"):
        build_dataset("celeba_hq", root=tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(4):
        (bad / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetNotFoundError, match="cannot read image"):
        build_dataset("celeba_hq", root=bad)[0]
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


def test_imagenet_layout(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "in", n=6, size=40, layout="imagefolder", classes=3, ext="JPEG")
    monkeypatch.setenv("IMAGENET_DIR", str(root))
    ds = build_dataset("imagenet", "val", image_size=32)
    assert len(ds) == 6 and ds[0].shape == (3, 32, 32)
    assert len(build_dataset("imagenet", "train", image_size=32, limit=4)) == 4
    with pytest.raises(ValueError, match="split"):
        build_dataset("imagenet", "test")
    (tmp_path / "in2").mkdir()
    with pytest.raises(DatasetNotFoundError, match="ImageFolder layout"):
        build_dataset("imagenet", "train", root=tmp_path / "in2")


def test_check_available_refuses_what_the_loaders_refuse_without_reading_images(tmp_path, tiny_fmnist, monkeypatch):
    """The cheap check a sweep makes before starting any run raises the loaders' own error for each
    way the data can be missing, and passes where the loaders would load."""
    root, _, _ = tiny_fmnist
    check_available("fashion_mnist", root, ("train", "val"))
    (root / "t10k-images-idx3-ubyte").unlink()
    check_available("fashion_mnist", root, ("train",))                 # the test file is not needed
    with pytest.raises(DatasetNotFoundError, match="t10k"):
        check_available("fashion_mnist", root, ("train", "val"))
    with pytest.raises(DatasetNotFoundError, match="not a folder"):
        check_available("fashion_mnist", tmp_path / "nowhere")
    # ImageNet: a good layout passes; an empty class folder tree, a missing split, no root all raise
    inet = make_image_folder(tmp_path / "in", n=4, size=24, layout="imagefolder", classes=2, ext="JPEG")
    check_available("imagenet", inet, ("train", "val"))
    empty = tmp_path / "empty"
    (empty / "train" / "n01").mkdir(parents=True)
    (empty / "train" / "n01" / "notes.txt").write_text("no image")
    with pytest.raises(DatasetNotFoundError, match="no images in class folders"):
        check_available("imagenet", empty)
    with pytest.raises(DatasetNotFoundError, match="val does not exist"):
        check_available("imagenet", empty, ("val",))
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        check_available("imagenet", tmp_path / "nowhere")
    for name, env in (("imagenet", "IMAGENET_DIR"), ("celeba_hq", "CELEBA_HQ_DIR")):
        monkeypatch.delenv(env, raising=False)
        with pytest.raises(DatasetNotFoundError, match=f"no root given. Pass root=... or set \\${env}"):
            check_available(name)
    celeba = make_image_folder(tmp_path / "celeba", n=20, size=24)
    check_available("celeba_hq", celeba, ("train", "val", "test"))
    two = make_image_folder(tmp_path / "celeba2", n=2, size=24)       # 2 images: the val split is empty
    with pytest.raises(DatasetNotFoundError, match="split 'val' is empty"):
        check_available("celeba_hq", two, ("train", "val"))
    with pytest.raises(ValueError, match="unknown dataset"):
        check_available("cifar10")


def test_bad_names():
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("cifar10")
    with pytest.raises(ValueError, match="augment"):
        build_dataset("celeba_hq", augment="heavy")
