"""Fashion-MNIST: the idx reader, the missing package, ``--data fashion`` loading, its evaluator and
every image family training on it (on a tiny synthetic copy written in idx here)."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.train import fashion
from edgegen.train.data import load_images, load_points
from edgegen.train.idx import parse_idx, read_idx, write_idx

INSTALLED = (fashion.DEFAULT_DIR / "train-images-idx3-ubyte.gz").is_file()
NOT_INSTALLED = f"the Debian package {fashion.APT_PACKAGE} is not installed"
N_TRAIN, N_TEST = 40, 20


# ----------------------------------------------------------------------------- idx reader


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a-idx", "a-idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    array = (np.arange(2 * 3 * 5).reshape(2, 3, 5) * 7 - 40).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, array)
    back[0, 0, 0] = 1  # a writable copy


def test_idx_known_bytes(tmp_path):
    # Header by hand: two zero bytes, 0x08 (uint8), 1 dimension, size 3 big-endian; then the values.
    raw = bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 255])
    np.testing.assert_array_equal(parse_idx(raw), [7, 8, 255])
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), [7, 8, 255])
    # int32 values are big-endian.
    assert parse_idx(bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 1, 2])).tolist() == [258]


@pytest.mark.parametrize("raw, match", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an idx file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "not an idx file"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "header"),
])
def test_idx_bad_bytes(raw, match):
    with pytest.raises(EdgegenError, match=match):
        parse_idx(raw)


def test_idx_unreadable(tmp_path):
    with pytest.raises(EdgegenError, match="cannot read idx file"):
        read_idx(tmp_path / "missing")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(EdgegenError, match="cannot read idx file"):
        read_idx(tmp_path / "bad.gz")


# ----------------------------------------------------------------------------- --data fashion


def write_fashion(root, n_train: int = N_TRAIN, n_test: int = N_TEST):
    """A tiny stand-in for the package: class k is a bright square at a position set by k."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            r, c = 2 + 8 * (k // 4), 2 + 6 * (k % 4)
            images[i, r:r + 6, c:c + 6] = 255
        image_stem, label_stem = fashion.FILES[split]
        write_idx(root / f"{image_stem}.gz", images)
        write_idx(root / label_stem, labels)  # uncompressed works too
    return root


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    root = write_fashion(tmp_path / "fashion-mnist")
    monkeypatch.setenv(fashion.DIR_ENV, str(root))
    return root


def test_missing_package_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv(fashion.DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(EdgegenError, match=f"apt-get install {fashion.APT_PACKAGE}") as info:
        load_images("fashion", "train", 32)
    assert "\n" not in str(info.value) and str(tmp_path / "nowhere") in str(info.value)
    with pytest.raises(EdgegenError, match=fashion.APT_PACKAGE):
        fashion.load_fashion("test", tmp_path)  # the folder as a parameter


def test_not_fashion_files(tmp_path):
    write_fashion(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))  # wrong count
    with pytest.raises(EdgegenError, match="not Fashion-MNIST"):
        fashion.load_fashion("test", tmp_path)
    with pytest.raises(EdgegenError, match="unknown Fashion-MNIST split"):
        fashion.load_fashion("validation", tmp_path)


def test_padding_scaling_and_split(tiny_fashion):
    raw_train, raw_labels = fashion.load_fashion("train", tiny_fashion)
    train, test = load_images("fashion", "train", 32), load_images("fashion", "test", 32)
    assert train.images.shape == (N_TRAIN, 1, 32, 32) and train.images.dtype == np.float32
    assert test.images.shape == (N_TEST, 1, 32, 32) and train.num_classes == 10 and train.name == "fashion"
    # 2 pixels of background (-1) on each side, the 28x28 image scaled from 0..255 to [-1, 1] inside.
    np.testing.assert_allclose(train.images[:, 0, 2:30, 2:30], raw_train / 127.5 - 1.0, atol=1e-6)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (train.images[:, 0][:, border] == -1.0).all()
    assert train.images.max() == 1.0 and train.images.min() == -1.0
    np.testing.assert_array_equal(train.labels, raw_labels)
    everything = load_images("fashion", "all", 32)
    np.testing.assert_array_equal(everything.images, np.concatenate([train.images, test.images]))
    small = load_images("fashion", "test", 16)
    assert small.images.shape == (N_TEST, 1, 16, 16) and -1.0 <= small.images.min() < small.images.max() <= 1.0
    train.images[:] = 0  # callers own their arrays
    assert load_images("fashion", "train", 32).images.min() == -1.0


def test_image_and_point_errors(tiny_fashion):
    with pytest.raises(EdgegenError, match="1 channel"):
        load_images("fashion", "train", 32, channels=3)
    with pytest.raises(EdgegenError, match="image data set"):
        load_points("fashion")


@pytest.mark.skipif(not INSTALLED, reason=NOT_INSTALLED)
def test_the_package(monkeypatch):
    monkeypatch.delenv(fashion.DIR_ENV, raising=False)
    images, labels = fashion.load_fashion("test")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    train = load_images("fashion", "train", 32)
    assert train.images.shape == (60_000, 1, 32, 32) and np.bincount(train.labels).tolist() == [6000] * 10
    assert train.images.min() == -1.0 and train.images.max() == 1.0
    assert (train.images[:, :, :2] == -1.0).all() and (train.images[:, :, :, -2:] == -1.0).all()


# ----------------------------------------------------------------------------- the image families


@pytest.mark.parametrize("family", ["ddpm", "sde", "flow", "gan", "vqvae", "dalle"])
def test_family_trains_on_fashion(family, tiny_fashion, tmp_path):
    """--data fashion with 32x32 images: the tiny preset builds, trains a couple of steps, and records
    the data set."""
    from edgegen.train.families import get_preset
    from edgegen.train.loop import TrainConfig
    from edgegen.train.runs import load_run_config, train_run

    cfg = get_preset(family, "tiny")
    cfg.data.source, cfg.data.image_size = "fashion", 32
    for section in vars(cfg).values():  # every training stage (the token families have two)
        if isinstance(section, TrainConfig):
            section.steps, section.batch_size, section.threads = 2, 8, 1
    run = train_run(family, cfg, tmp_path / family, progress=False)
    meta, config = load_run_config(run)
    assert config.data.source == "fashion" and config.data.image_size == 32
