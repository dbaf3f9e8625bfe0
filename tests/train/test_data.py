"""Data sets: digits, the user's image folders, and moons."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import make_moons

from edgegen.errors import EdgegenError
from edgegen.train import data
from edgegen.train.data import (DATASETS, ImageDataset, PointDataset, load_images, load_moons, load_points,
                                sample_moons)

N_DIGITS = 1797


def _image_bytes(images: np.ndarray) -> set[bytes]:
    return {img.tobytes() for img in images}


# ----------------------------------------------------------------------------- digits


@pytest.mark.parametrize("split, n", [("train", 1437), ("test", 360), ("all", N_DIGITS)])
def test_digits_shapes_and_range(split, n):
    data = load_images("digits", split)
    assert isinstance(data, ImageDataset)
    assert len(data) == n
    assert data.images.shape == (n, 1, 16, 16) and data.images.dtype == np.float32
    assert data.labels.shape == (n,) and data.labels.dtype == np.int64
    assert data.images.min() == -1.0 and data.images.max() == 1.0
    assert data.num_classes == 10 and set(data.labels) == set(range(10))
    assert data.name == "digits"


def test_digits_native_size_is_the_raw_data():
    from sklearn.datasets import load_digits

    data = load_images("digits", "all", image_size=8)
    np.testing.assert_allclose(data.images[:, 0], load_digits().images / 8 - 1, atol=1e-6)


def test_digits_split_is_disjoint_complete_and_stratified():
    train, test = load_images("digits", "train"), load_images("digits", "test")
    assert len(train) + len(test) == N_DIGITS
    all_data = load_images("digits", "all")
    # Every image lands in exactly one of train/test (the digits set has a few exact duplicates,
    # so compare multisets of (image, label) rather than sets).
    def key(d):
        return sorted(img.tobytes() + bytes([lab]) for img, lab in zip(d.images, d.labels))
    assert sorted(key(train) + key(test)) == key(all_data)
    test_counts = np.bincount(test.labels, minlength=10)
    assert test_counts.min() >= 35 and test_counts.max() <= 37


def test_digits_deterministic_and_copies():
    a, b = load_images("digits", "test"), load_images("digits", "test")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    a.images[:] = 0  # callers own their arrays
    assert load_images("digits", "test").images.min() == -1.0


def test_digits_other_size():
    data = load_images("digits", "test", image_size=28)
    assert data.images.shape == (360, 1, 28, 28)
    assert -1.0 <= data.images.min() and data.images.max() <= 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(spec="digits", channels=3), "1 channel"),
    (dict(spec="digits", split="validation"), "unknown split 'validation'"),
    (dict(spec="mnist"), r"unknown data set 'mnist' \(choose digits, fashion, moons, folder:PATH\)"),
    (dict(spec="moons"), "point data set"),
    (dict(spec="digits", image_size=0), "image size"),
])
def test_image_errors(kwargs, match):
    with pytest.raises(EdgegenError, match=match):
        load_images(**kwargs)


# ----------------------------------------------------------------------------- folders


def _write_images(folder, n, color, size=(6, 5), suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, color).save(folder / f"img{i:02d}{suffix}")


def test_folder_with_class_subfolders(tmp_path):
    _write_images(tmp_path / "b_white", 5, (255, 255, 255))
    _write_images(tmp_path / "a_black", 5, (0, 0, 0), suffix=".JPG")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_images(f"folder:{tmp_path}", "all", image_size=8)
    assert data.images.shape == (10, 1, 8, 8) and data.images.dtype == np.float32
    assert data.num_classes == 2 and data.name == f"folder:{tmp_path}"
    # Classes are the subfolders sorted by name: a_black -> 0, b_white -> 1.
    np.testing.assert_allclose(data.images[data.labels == 0], -1.0, atol=0.02)
    np.testing.assert_allclose(data.images[data.labels == 1], 1.0)
    train, test = (load_images(f"folder:{tmp_path}", s, image_size=8) for s in ("train", "test"))
    assert (len(train), len(test)) == (8, 2)
    assert sorted(test.labels) == [0, 1]  # stratified


def test_folder_unlabeled_rgb(tmp_path):
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    for i, color in enumerate(colors):
        Image.new("RGB", (7, 3), color).save(tmp_path / f"x{i}{'.bmp' if i % 2 else '.webp'}")
    data = load_images(f"folder:{tmp_path}", "all", image_size=4, channels=3)
    assert data.images.shape == (5, 3, 4, 4)
    assert data.num_classes == 0 and not data.labels.any()
    expected = np.array(colors, dtype=np.float32)[:, :, None, None] / 127.5 - 1  # (5, 3, 1, 1)
    np.testing.assert_allclose(data.images, np.broadcast_to(expected, data.images.shape), atol=0.02)
    train, test = (load_images(f"folder:{tmp_path}", s, image_size=4, channels=3) for s in ("train", "test"))
    assert (len(train), len(test)) == (4, 1)
    assert _image_bytes(train.images) | _image_bytes(test.images) == _image_bytes(data.images)
    assert _image_bytes(train.images).isdisjoint(_image_bytes(test.images))
    again = load_images(f"folder:{tmp_path}", "test", image_size=4, channels=3)
    np.testing.assert_array_equal(again.images, test.images)


def test_folder_errors(tmp_path):
    with pytest.raises(EdgegenError, match="not found.*missing"):
        load_images(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(EdgegenError, match=f"no images .* in {tmp_path}"):
        load_images(f"folder:{tmp_path}")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(EdgegenError, match="cannot read image .*broken.png"):
        load_images(f"folder:{tmp_path}")


# ----------------------------------------------------------------------------- moons


def test_moons_standardized_and_deterministic():
    points = load_moons(4096, seed=0)
    assert points.shape == (4096, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(points.std(axis=0), 1.0, atol=0.05)
    np.testing.assert_array_equal(points, load_moons(4096, seed=0))
    assert not np.array_equal(points, load_moons(4096, seed=1))
    # The transform is one fixed affine map, not a per-call standardization.
    def affine(n):
        raw = make_moons(n_samples=n, noise=0.05, random_state=3)[0]
        z = load_moons(n, seed=3)
        scale = (z[1] - z[0]) / (raw[1] - raw[0])  # (2,)
        offset = z[0] - raw[0] * scale  # (2,)
        np.testing.assert_allclose(z, raw * scale + offset, atol=1e-5)
        return np.concatenate([scale, offset])

    np.testing.assert_allclose(affine(10), affine(5000), rtol=1e-4, atol=1e-5)
    assert np.abs(load_moons(10, seed=3).mean(axis=0)).max() > 1e-3  # not re-centered per call


def test_sample_moons_is_iid_and_standardized_like_load_moons():
    a = sample_moons(20000, seed=4)
    assert a.shape == (20000, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, sample_moons(20000, seed=4))
    np.testing.assert_allclose(a.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(a.std(axis=0), 1.0, atol=0.03)
    grid, labels = data._moons(20000, 4, 0.05)  # the same moons: outer (label 0) first
    np.testing.assert_allclose(a[:10000].mean(axis=0), grid[labels == 0].mean(axis=0), atol=0.03)
    # noise-free: the outer half lies on the unit circle (before standardization), angles are random
    mean, std = np.asarray(data._moons_standardization(0.0))
    raw = sample_moons(1000, seed=2, noise=0.0) * std + mean
    np.testing.assert_allclose(np.hypot(raw[:500, 0], raw[:500, 1]), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.hypot(raw[500:, 0] - 1.0, raw[500:, 1] - 0.5), 1.0, atol=1e-5)
    gaps = np.diff(np.sort(np.arctan2(raw[:500, 1], raw[:500, 0])))
    assert gaps.std() > 0.5 * gaps.mean()  # exponential-like gaps, not make_moons' even grid
    with pytest.raises(EdgegenError, match="positive integer"):
        sample_moons(0, seed=1)


def test_moons_score_floor_is_what_a_perfect_sampler_reaches():
    """Exact i.i.d. moons score a ratio near 1 (make_moons' stratified sets would put the floor
    about 2x lower); a 5% too wide or shifted set fails the <= 2 criterion."""
    from edgegen.train.moons_eval import score_points
    ratios = [score_points(sample_moons(2000, seed=700 + k))["ratio"] for k in range(4)]
    assert all(0.6 < r < 1.5 for r in ratios), ratios
    s = score_points(sample_moons(2000, seed=700))
    assert s["sw_fresh_make_moons"] < 0.6 * s["sw_fresh"]
    assert score_points(sample_moons(2000, seed=700) * 1.05)["ratio"] > 2.0
    assert score_points(sample_moons(2000, seed=700) + np.float32(0.1))["ratio"] > 2.0


def test_load_points_moons():
    train, test = load_points("moons", "train"), load_points("moons", "test", n=100)
    assert isinstance(train, PointDataset)
    assert train.points.shape == (4096, 2) and test.points.shape == (100, 2)
    assert train.labels.dtype == np.int64 and set(train.labels) == {0, 1}
    assert train.num_classes == 2 and train.name == "moons"
    np.testing.assert_array_equal(train.points, load_moons(4096, seed=0))
    np.testing.assert_array_equal(test.points, load_moons(100, seed=1))


@pytest.mark.parametrize("args, match", [
    (("moons", "all"), "unknown split"),
    (("digits",), "image data set"),
    (("circles",), "unknown data set 'circles'"),
])
def test_point_errors(args, match):
    with pytest.raises(EdgegenError, match=match):
        load_points(*args)


def test_datasets_help_names():
    assert DATASETS == ("digits", "fashion", "moons", "folder:PATH")
