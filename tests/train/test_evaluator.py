"""The evaluator: digits (trained once per session by the ``evaluator`` fixture), the choice of
evaluator per data set, a labeled folder's own evaluator, and the metrics."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

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

    def quick_train(architecture, training, progress, data=None):
        calls.append(progress)
        return ev.DigitCNN(**architecture).eval()

    monkeypatch.setattr(ev, "_train", quick_train)
    (folder / "model.safetensors").write_bytes(b"garbage")
    rebuilt = ev.get_evaluator(tmp_path, progress=False)
    assert calls == [False]
    assert rebuilt.test_accuracy < 0.5
    monkeypatch.setattr(ev, "_train", _no_training)
    assert ev.get_evaluator(tmp_path, progress=False).test_accuracy == rebuilt.test_accuracy


# ----------------------------------------------------------------------------- one evaluator per data set


def write_folder(root, labeled: bool = True, per_class: int = 10, size: int = 12):
    """RGB images; with labels, three classes told apart by where a red bar is (row, column, none)."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(("bar_row", "bar_col", "plain")):
        folder = root / name if labeled else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, size=(size, size, 3)).astype(np.uint8)
            j = int(rng.integers(2, size - 2))
            if k == 0:
                img[j, :, 0] = 255
            elif k == 1:
                img[:, j, 0] = 255
            Image.fromarray(img).save(folder / f"{name}-{i}.png")
    return root


def test_unavailable_explains_in_one_line(tmp_path):
    labeled, unlabeled = write_folder(tmp_path / "labeled"), write_folder(tmp_path / "flat", labeled=False)
    assert ev.unavailable("digits", (1, 16, 16)) is None
    assert ev.unavailable("fashion", [1, 32, 32]) is None
    assert ev.unavailable(f"folder:{labeled}", (3, 12, 12)) is None
    reasons = {
        "moons": ev.unavailable("moons", (2,)),
        "fashion rgb": ev.unavailable("fashion", (3, 32, 32)),
        "not square": ev.unavailable("digits", (1, 16, 8)),
        "unknown": ev.unavailable("mnist", (1, 28, 28)),
        "unlabeled": ev.unavailable(f"folder:{unlabeled}", (3, 12, 12)),
        "missing": ev.unavailable(f"folder:{tmp_path / 'missing'}", (1, 16, 16)),
    }
    assert all(r and "\n" not in r for r in reasons.values()), reasons
    assert "sliced Wasserstein" in reasons["moons"]
    assert "1 channel" in reasons["fashion rgb"] and "mnist" in reasons["unknown"]
    assert "not labeled" in reasons["unlabeled"] and "one subfolder of images per class" in reasons["unlabeled"]
    assert "not found" in reasons["missing"]


def test_unlabeled_folder_has_no_evaluator(tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "_train", _no_training)
    flat = write_folder(tmp_path / "flat", labeled=False)
    with pytest.raises(EdgegenError, match="not labeled: the evaluator needs one subfolder of images per class"):
        ev.evaluator_for(f"folder:{flat}", (3, 12, 12), cache=tmp_path)
    # One class is not enough to train a classifier either.
    one = tmp_path / "one"
    write_folder(one)
    for extra in ("bar_col", "plain"):
        shutil.rmtree(one / extra)
    with pytest.raises(EdgegenError, match="at least 2"):
        ev.get_evaluator(tmp_path, data=ev.EvalData(f"folder:{one}", 12, 3))
    with pytest.raises(EdgegenError, match="sliced Wasserstein"):
        ev.evaluator_for("moons", (2,), cache=tmp_path)


def test_cache_folder_per_data_set(tmp_path):
    assert ev.evaluator_dir(tmp_path) == tmp_path / "evaluator" / "digits-cnn"  # as before
    assert ev.evaluator_dir(tmp_path, ev.EvalData("digits", 16, 1)) == tmp_path / "evaluator" / "digits-cnn"
    assert ev.evaluator_dir(tmp_path, ev.EvalData("digits", 32, 1)).name == "digits-1x32x32-cnn"
    assert ev.evaluator_dir(tmp_path, ev.EvalData("fashion", 32, 1)).name == "fashion-1x32x32-cnn"
    a = ev.evaluator_dir(tmp_path, ev.EvalData(f"folder:{tmp_path / 'x' / 'pets'}", 12, 3)).name
    b = ev.evaluator_dir(tmp_path, ev.EvalData(f"folder:{tmp_path / 'y' / 'pets'}", 12, 3)).name
    assert a.startswith("folder-pets-") and a.endswith("-3x12x12-cnn") and a != b


def test_recipe_per_data_set():
    assert ev.recipe(ev.EvalData()) == (ev.ARCHITECTURE, ev.TRAINING)  # digits: unchanged
    arch, training = ev.recipe(ev.EvalData("fashion", 32, 1))
    assert arch == ev.FASHION_ARCHITECTURE and training == ev.FASHION_TRAINING
    assert ev.recipe(ev.EvalData("fashion", 16, 1))[0]["pool_to"] == 4  # the whole last (S/4) map
    arch, _ = ev.recipe(ev.EvalData("folder:x", 12, 3), num_classes=3)
    assert arch["in_channels"] == 3 and arch["num_classes"] == 3 and arch["image_size"] == 12


def test_labeled_folder_gets_its_own_evaluator(tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "MIN_STEPS", 120)  # enough for bars, and quick
    root = write_folder(tmp_path / "bars")
    spec = f"folder:{root}"
    evaluator = ev.evaluator_for(spec, (3, 12, 12), cache=tmp_path / "cache", progress=False)
    assert evaluator.path == ev.evaluator_dir(tmp_path / "cache", ev.EvalData(spec, 12, 3))
    config = json.loads((evaluator.path / "config.json").read_text())
    assert config["data"] == {"source": spec, "image_size": 12, "channels": 3}
    assert config["architecture"]["num_classes"] == 3 and len(config["fingerprint"]) == 64
    assert config["training"]["epochs"] == 120  # one batch an epoch: MIN_STEPS epochs
    test = load_images(spec, "test", 12, 3)
    assert evaluator.test_accuracy == evaluator.accuracy(test.images, test.labels) >= 0.8
    score = evaluator.score(test.images, test.labels)
    refs = score["references"]
    assert score["n"] == len(test) and score["fid"] < 1e-6 * refs["fid_noise_vs_test"]
    assert refs["same_n"] == len(test) and refs["n_test"] == len(test)
    assert refs["fid_train_same_n_vs_test"] < refs["fid_noise_vs_test"]
    with pytest.raises(EdgegenError, match=r"\(N, 3, 12, 12\)"):
        evaluator.fid(np.zeros((4, 1, 12, 12), np.float32))

    # Cached: loaded, not retrained; the digits evaluator is not touched.
    monkeypatch.setattr(ev, "_train", _no_training)
    again = ev.evaluator_for(spec, (3, 12, 12), cache=tmp_path / "cache")
    np.testing.assert_array_equal(again.features(test.images), evaluator.features(test.images))
    assert not ev.evaluator_dir(tmp_path / "cache").exists()

    # Changed images: the fingerprint no longer matches, so the classifier is retrained.
    calls = []
    monkeypatch.setattr(ev, "_train", lambda a, t, progress, data=None: calls.append(data) or ev.ClassifierCNN(**a))
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(root / "plain" / "new.png")
    ev.evaluator_for(spec, (3, 12, 12), cache=tmp_path / "cache", progress=False)
    assert calls == [ev.EvalData(spec, 12, 3)]


def test_fashion_evaluator_is_chosen_for_fashion(tmp_path, monkeypatch):
    from edgegen.train import fashion
    from tests.train.test_fashion import write_fashion  # the tiny stand-in for the package

    monkeypatch.setenv(fashion.DIR_ENV, str(write_fashion(tmp_path / "fashion-mnist")))
    evaluator = ev.evaluator_for("fashion", (1, 32, 32), cache=tmp_path / "cache", progress=False)
    assert evaluator.path.name == "fashion-1x32x32-cnn" and evaluator.data == ev.EvalData("fashion", 32, 1)
    config = json.loads((evaluator.path / "config.json").read_text())
    assert config["architecture"] == ev.FASHION_ARCHITECTURE and "fingerprint" not in config
    test = load_images("fashion", "test", 32)
    assert evaluator.references()["n_test"] == len(test)
    assert evaluator.score(test.images, test.labels)["references"]["same_n"] == len(test)


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
