"""The digit evaluator (trained once per session by the ``evaluator`` fixture) and the metrics."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

import edgegen.train.evaluator as ev
from edgegen.errors import EdgegenError
from edgegen.train.data import load_images


@pytest.fixture(scope="module")
def test_split():
    return load_images("digits", "test")


def _no_training(*args, **kwargs):
    raise AssertionError("the evaluator was retrained instead of loaded from the cache")


# ----------------------------------------------------------------------------- classifier and FID


def test_test_accuracy(evaluator, test_split):
    assert evaluator.test_accuracy >= 0.97
    assert evaluator.accuracy(test_split.images, test_split.labels) == evaluator.test_accuracy
    predictions = evaluator.predict(test_split.images)
    assert predictions.shape == (360,) and predictions.dtype == np.int64


def test_features(evaluator, test_split):
    features = evaluator.features(test_split.images[:7])
    assert features.shape == (7, ev.ARCHITECTURE["feature_dim"]) and features.dtype == np.float64
    np.testing.assert_allclose(features, evaluator.features(test_split.images)[:7], rtol=1e-5, atol=1e-5)


def test_fid_and_references(evaluator, test_split):
    refs = evaluator.references()
    assert set(refs) == set(ev.REFERENCE_KEYS)
    assert refs["n_test"] == 360 and refs["test_accuracy"] == evaluator.test_accuracy
    fid_test = evaluator.fid(test_split.images)
    assert fid_test < 1e-6 * refs["fid_noise_vs_test"]
    assert fid_test < refs["fid_train_vs_test"] < refs["fid_train_subsample_vs_test"]
    assert 20 * refs["fid_train_subsample_vs_test"] < refs["fid_noise_vs_test"]


def test_score(evaluator, test_split):
    images, labels = test_split.images[:100], test_split.labels[:100]
    score = evaluator.score(images, labels)
    assert score["n"] == 100 and score["accuracy"] >= 0.95
    assert score["fid"] == pytest.approx(evaluator.fid(images))
    refs = dict(score["references"])
    assert refs.pop("same_n") == 100
    # Real images at n=100 sit above the whole-split floor (small-n bias) and far below noise.
    assert evaluator.references()["fid_train_vs_test"] < refs.pop("fid_train_same_n_vs_test") < 50
    assert refs == evaluator.references()
    assert evaluator.score(images)["accuracy"] is None
    # Wrong labels are measured, not rejected.
    assert evaluator.score(images, (labels + 1) % 10)["accuracy"] <= 0.05


@pytest.mark.parametrize("shape", [(10, 16, 16), (10, 3, 16, 16), (10, 1, 8, 8), (1, 1, 16, 16), (0, 1, 16, 16)])
def test_bad_shapes(evaluator, shape):
    with pytest.raises(EdgegenError, match=re.escape(str(shape))):
        evaluator.fid(np.zeros(shape, dtype=np.float32))


def test_bad_values_and_labels(evaluator, test_split):
    images = test_split.images[:4].copy()
    with pytest.raises(EdgegenError, match=r"labels must have shape \(4,\)"):
        evaluator.accuracy(images, test_split.labels[:3])
    images[0, 0, 0, 0] = np.nan
    with pytest.raises(EdgegenError, match="NaN"):
        evaluator.score(images)


# ----------------------------------------------------------------------------- cache


def test_cache_round_trip(evaluator, evaluator_cache, test_split, monkeypatch):
    folder = ev.evaluator_dir(evaluator_cache)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "references.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == ev.ARCHITECTURE and config["training_seed"] == 0
    assert config["test_accuracy"] == evaluator.test_accuracy
    assert json.loads((folder / "references.json").read_text()) == evaluator.references()

    monkeypatch.setattr(ev, "_train", _no_training)
    loaded = ev.get_evaluator(evaluator_cache, progress=False)
    np.testing.assert_array_equal(loaded.features(test_split.images), evaluator.features(test_split.images))
    assert loaded.references() == evaluator.references()


def test_env_cache_root(evaluator_cache, monkeypatch):
    monkeypatch.setenv("EDGEGEN_CACHE", str(evaluator_cache))
    monkeypatch.setattr(ev, "_train", _no_training)
    assert ev.get_evaluator(progress=False).path == ev.evaluator_dir(evaluator_cache)


def test_corrupt_cache_is_rebuilt(evaluator, evaluator_cache, tmp_path, monkeypatch):
    shutil.copytree(ev.evaluator_dir(evaluator_cache), ev.evaluator_dir(tmp_path))
    folder = ev.evaluator_dir(tmp_path)

    # A broken references.json is recomputed from the cached model, without training.
    monkeypatch.setattr(ev, "_train", _no_training)
    (folder / "references.json").write_text("{")
    assert ev.get_evaluator(tmp_path, progress=False).references() == pytest.approx(evaluator.references())
    assert json.loads((folder / "references.json").read_text()) == pytest.approx(evaluator.references())

    # Broken weights mean a new model (a quick untrained stand-in here).
    calls = []

    def quick_train(architecture, training, progress):
        calls.append(progress)
        return ev.DigitCNN(**architecture).eval()

    monkeypatch.setattr(ev, "_train", quick_train)
    (folder / "model.safetensors").write_bytes(b"garbage")
    rebuilt = ev.get_evaluator(tmp_path, progress=False)
    assert calls == [False]
    assert rebuilt.test_accuracy < 0.5
    monkeypatch.setattr(ev, "_train", _no_training)
    assert ev.get_evaluator(tmp_path, progress=False).test_accuracy == rebuilt.test_accuracy


# ----------------------------------------------------------------------------- metrics


def test_frechet_distance_identical():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8))
    mu, sigma = ev.gaussian_stats(x)
    assert ev.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_closed_form():
    # Diagonal Gaussians: |mu1 - mu2|^2 + sum (s1 - s2)^2 with standard deviations s.
    mu1, s1 = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    mu2, s2 = np.array([3.0, -1.0]), np.array([0.5, 3.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    assert ev.frechet_distance(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2)) == pytest.approx(expected)
    assert ev.frechet_distance(1.0, 4.0, -1.0, 9.0) == pytest.approx(4.0 + 1.0)  # scalars: variances


def test_frechet_distance_singular():
    sigma = np.zeros((3, 3))
    sigma[0, 0] = 1.0  # rank 1
    value = ev.frechet_distance(np.zeros(3), sigma, np.ones(3), sigma)
    assert value == pytest.approx(3.0, abs=1e-3)


def test_sliced_wasserstein():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1000, 2))
    assert ev.sliced_wasserstein(a, a) == 0.0
    distances = [ev.sliced_wasserstein(a, a + [shift, 0.0]) for shift in (0.1, 0.5, 2.0)]
    assert distances == sorted(distances)
    # SW-2 of a shift t in 2-D is about |t| / sqrt(2).
    assert distances[-1] == pytest.approx(2.0 / np.sqrt(2), rel=0.1)
    # Different sizes, and the same directions for the same seed.
    b = rng.normal(size=(300, 2))
    assert ev.sliced_wasserstein(a, b) == ev.sliced_wasserstein(a, b) < 0.2
    with pytest.raises(EdgegenError, match="point sets"):
        ev.sliced_wasserstein(a, np.zeros((5, 3)))
