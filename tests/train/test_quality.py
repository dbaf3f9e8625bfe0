import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.train import quality


def blobs(n: int, seed: int, classes: int = 4, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """n points from `classes` well-separated Gaussian blobs in `dim` dimensions, and their labels."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).normal(scale=10.0, size=(classes, dim))
    labels = np.arange(n) % classes
    return centers[labels] + rng.normal(size=(n, dim)), labels


def test_knn_radius_and_nearest_by_hand():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(quality.knn_radii(x, 1), [1, 1, 2, 4])
    np.testing.assert_allclose(quality.knn_radii(x, 2), [3, 2, 3, 6])
    d, i = quality.nearest_distances(np.array([[2.9], [-1.0]]), x)
    np.testing.assert_allclose(d, [0.1, 1.0], atol=1e-9)
    assert list(i) == [2, 0]


def test_held_out_real_sample_scores_near_the_real_reference():
    real, real_y = blobs(400, 0)
    held_out, held_y = blobs(400, 1)
    reference, ref_y = blobs(400, 2)
    d, r = quality.diversity(real, held_out, real_y, held_y), quality.diversity(real, reference, real_y, ref_y)
    for key in ("precision", "recall", "coverage", "class_mean_recall"):
        assert d[key] > 0.75 and abs(d[key] - r[key]) < 0.08, (key, d[key], r[key])
    assert abs(d["density"] - 1.0) < 0.2 and abs(d["spread_ratio"] - 1.0) < 0.1
    assert set(d["per_class"]) == {"0", "1", "2", "3"}


def test_one_repeated_real_image_has_recall_near_zero():
    real, real_y = blobs(400, 0)
    copies = np.repeat(real[:1], 400, axis=0)
    d = quality.diversity(real, copies, real_y, np.full(400, real_y[0]))
    assert d["precision"] == 1.0  # every copy is a real point: perfect fidelity ...
    assert d["recall"] < 0.01 and d["coverage"] < 0.05  # ... and no diversity
    assert d["spread"] < 1e-9 and d["per_class"]["0"]["recall"] < 0.05


def test_one_image_per_label_is_caught_per_class_not_by_precision():
    """The DCGAN failure: every class present, each class one image. Overall recall is low and the
    per-class spread is 0, although precision is perfect and the labels would classify correctly."""
    real, real_y = blobs(400, 0)
    firsts = np.stack([real[real_y == c][0] for c in range(4)])
    fake_y = np.arange(400) % 4
    d = quality.diversity(real, firsts[fake_y], real_y, fake_y)
    assert d["precision"] == 1.0 and d["recall"] < 0.02 and d["class_mean_recall"] < 0.05
    assert d["spread_ratio"] < 1e-9


def test_copies_of_training_images_are_flagged_as_memorized():
    train, _ = blobs(500, 0)
    test, _ = blobs(300, 1)
    copies = quality.memorization(train[:200] + 1e-6, train, test)
    assert copies["fraction_memorized"] == 1.0 and copies["sample_nn_median"] < 1e-3
    fresh = quality.memorization(blobs(300, 2)[0], train, test)
    assert fresh["fraction_memorized"] < 0.05  # about 1% by construction of the threshold
    assert abs(fresh["sample_nn_median"] / fresh["test_nn_median"] - 1.0) < 0.15
    half = quality.memorization(np.concatenate([train[:100], blobs(100, 3)[0]]), train, test)
    assert 0.45 <= half["fraction_memorized"] <= 0.55
    assert set(quality.public(half)) == {"percentile", "threshold", "fraction_memorized", "sample_nn_median",
                                         "test_nn_median", "sample_nn_min", "test_nn_min"}


def test_memorization_on_digit_images_and_closest_pairs_png(tmp_path):
    from edgegen.train.data import load_images
    train, test = load_images("digits", "train").images, load_images("digits", "test").images
    mem = quality.memorization(train[:50], train, test)  # (N, 1, 16, 16) images, flattened inside
    assert mem["fraction_memorized"] == 1.0 and list(mem["nearest_train"]) == list(range(50))
    quality.closest_pairs_png(tmp_path / "pairs.png", train[:50], train, mem, pairs=8)
    from PIL import Image
    assert Image.open(tmp_path / "pairs.png").size[0] > Image.open(tmp_path / "pairs.png").size[1]


def test_report_compares_with_the_same_n_reference():
    real, real_y = blobs(300, 0)
    ref, ref_y = blobs(300, 1)
    fake, fake_y = blobs(300, 2)
    out = quality.report(fake, fake_y, real, real_y, ref, ref_y, fake, ref, real)
    assert 0.9 < out["diversity"]["recall_vs_reference"] < 1.1
    assert out["diversity"]["reference"]["recall"] > 0.75
    assert "nearest_train" not in out["memorization"]
    few = quality.report(fake[:5], fake_y[:5], real, real_y, ref[:5], ref_y[:5], fake[:5], ref, real)
    assert few["diversity"] is None and few["memorization"]["fraction_memorized"] == 0.0


def test_bad_input_raises_one_line_errors():
    good = np.zeros((10, 3))
    with pytest.raises(EdgegenError, match="NaN"):
        quality.precision_recall(good, np.full((10, 3), np.nan))
    with pytest.raises(EdgegenError, match="more than k"):
        quality.knn_radii(good[:3], 3)
    with pytest.raises(EdgegenError, match="labels must have shape"):
        quality.diversity(good, good, np.zeros(10), np.zeros(4))
    with pytest.raises(EdgegenError, match="differ in size"):
        quality.memorization(good, np.zeros((5, 4)), np.zeros((5, 4)))


def test_large_sets_are_chunked_and_the_threshold_subsampled(monkeypatch):
    monkeypatch.setattr(quality, "_CELLS", 50)  # force many small chunks
    monkeypatch.setattr(quality, "MAX_TEST_FOR_THRESHOLD", 40)
    train, _ = blobs(30, 0)
    test, _ = blobs(200, 1)
    d, i = quality.nearest_distances(test, train)
    full = quality.pairwise_distances(test, train)
    np.testing.assert_allclose(d, full.min(1)) and np.testing.assert_array_equal(i, full.argmin(1))
    np.testing.assert_allclose(quality.knn_radii(test, 2), np.sort(quality.pairwise_distances(test, test), 1)[:, 2])
    assert quality.memorization(train[:10], train, test)["fraction_memorized"] == 1.0
