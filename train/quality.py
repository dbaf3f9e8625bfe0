"""Diversity and memorization of generated samples, on arrays (numpy only).

FID mixes fidelity and diversity into one number, and class accuracy sees neither: a
generator that draws one image per label scores accuracy 1.0. These figures separate them.

- Improved precision / recall (Kynkäänniemi et al. 2019): each set's manifold is the union
  of balls around its points with radius = distance to the k-th nearest neighbour in the same
  set. Precision = fraction of fakes inside the real manifold (fidelity); recall = fraction
  of reals inside the fake manifold (diversity: a collapsed generator has tiny balls).
- Density / coverage (Naeem et al. 2020): density = mean number of real balls holding a fake,
  over k (can exceed 1); coverage = fraction of real balls holding at least one fake. Both use
  the real balls only, so they resist outlier fakes that inflate recall.
- Intra-class spread: root mean squared distance of a class's features to their centroid,
  averaged over classes; a per-label collapse drives it to 0.
- Memorization: each sample's distance to its nearest training image, against the distance of
  held-out test images to their nearest training image. A sample closer to the training set
  than the test images' 1st percentile is flagged: only 1% of genuinely new images get that
  close, so a much higher fraction means the model copies.

Every figure is meant to be read against the same figure for a real sample of the same size
(``reference``), since all of them depend on n and k.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgegen.errors import EdgegenError

K_PR = 3  # Kynkäänniemi et al. 2019
K_DC = 5  # Naeem et al. 2020
MEMORIZATION_PERCENTILE = 1.0
_CELLS = 1 << 22  # distance-matrix entries computed at once (32 MB of float64: Fashion-MNIST's 60k too)
MAX_TEST_FOR_THRESHOLD = 2000  # test images whose nearest-training distances set the threshold


def _points(a, name: str, min_n: int = 1, dtype=np.float64) -> np.ndarray:
    arr = np.asarray(a, dtype=dtype)
    arr = arr.reshape(len(arr), -1) if arr.ndim > 2 else arr
    if arr.ndim != 2 or len(arr) < min_n or arr.shape[1] == 0:
        raise EdgegenError(f"{name} must be (N, D) with N >= {min_n}, got shape {tuple(np.shape(a))}")
    if not np.isfinite(arr).all():
        raise EdgegenError(f"{name} contains NaN or infinite values")
    return arr


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (Na, Nb) between rows of a (Na, D) and b (Nb, D)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def nearest_distances(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the distance to and index of its nearest ref row: (Nq,), (Nq,)."""
    dist, idx = [], []
    rows = max(1, _CELLS // len(ref))
    for i in range(0, len(query), rows):
        d = pairwise_distances(query[i:i + rows], ref)
        j = d.argmin(1)
        idx.append(j)
        dist.append(d[np.arange(len(j)), j])
    return np.concatenate(dist), np.concatenate(idx)


_CACHE: dict = {}  # the test split's radii and distances are the same in every score: computed once


def _cached(key_arrays, tag, compute):
    """compute() memoized on the content of key_arrays (the reference sets do not change between scores)."""
    h = hashlib.sha1(tag.encode())
    for a in key_arrays:
        h.update(str((a.shape, a.dtype)).encode())
        h.update(np.ascontiguousarray(a).data)
    key = h.hexdigest()
    if key not in _CACHE:
        if len(_CACHE) >= 256:  # 1-D arrays of at most a few thousand floats each
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = compute()
    return _CACHE[key]


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of x (N, D) to its k-th nearest other row (N,)."""
    return _cached([x], f"knn{k}", lambda: _knn_radii(x, k))


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    if len(x) <= k:
        raise EdgegenError(f"k-nearest-neighbour radii need more than k={k} points, got {len(x)}")
    out, rows = [], max(1, _CELLS // len(x))
    for i in range(0, len(x), rows):
        d = pairwise_distances(x[i:i + rows], x)
        out.append(np.partition(d, k, axis=1)[:, k])  # column 0 is the point itself (distance 0)
    return np.concatenate(out)


def _inside(query: np.ndarray, centers: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(Nq, Nc) booleans: query i lies in the closed ball of center j."""
    return pairwise_distances(query, centers) <= radii[None, :]


def precision_recall(real, fake, k: int = K_PR) -> dict:
    """Improved precision and recall of fake (M, D) against real (N, D)."""
    real, fake = _points(real, "real features", k + 1), _points(fake, "fake features", k + 1)
    precision = _inside(fake, real, knn_radii(real, k)).any(1).mean()
    recall = _inside(real, fake, knn_radii(fake, k)).any(1).mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real, fake, k: int = K_DC) -> dict:
    """Density and coverage of fake (M, D) against real (N, D)."""
    real, fake = _points(real, "real features", k + 1), _points(fake, "fake features", 1)
    inside = _inside(fake, real, knn_radii(real, k))  # (M, N)
    return {"density": float(inside.sum() / (k * len(fake))), "coverage": float(inside.any(0).mean())}


def spread(features, labels=None) -> float:
    """Root mean squared distance to the class centroid, averaged over classes (one class if no labels)."""
    features = _points(features, "features")
    labels = np.zeros(len(features), dtype=np.int64) if labels is None else np.asarray(labels)
    if labels.shape != (len(features),):
        raise EdgegenError(f"labels must have shape ({len(features)},), got {tuple(labels.shape)}")
    per = [np.sqrt(((f - f.mean(0)) ** 2).sum(1).mean()) for f in (features[labels == c] for c in np.unique(labels))]
    return float(np.mean(per))


def diversity(real, fake, real_labels=None, fake_labels=None) -> dict:
    """Precision, recall, density, coverage and spread (ratio to the real spread), overall and per class.

    Per-class figures compare the fakes of label c with the reals of class c (only when both sets
    have labels and enough points of that class for the k-NN radii)."""
    real, fake = _points(real, "real features", K_DC + 1), _points(fake, "fake features", K_DC + 1)
    out = {**precision_recall(real, fake), **density_coverage(real, fake)}
    if real_labels is None or fake_labels is None:
        out.update(spread=spread(fake), spread_ratio=spread(fake) / max(spread(real), 1e-12))
        return out
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    for name, arr, lab in (("real", real, real_labels), ("fake", fake, fake_labels)):
        if lab.shape != (len(arr),):
            raise EdgegenError(f"{name} labels must have shape ({len(arr)},), got {tuple(lab.shape)}")
    s_fake, s_real = spread(fake, fake_labels), spread(real, real_labels)
    out.update(spread=s_fake, spread_ratio=s_fake / max(s_real, 1e-12))
    per_class = {}
    for c in np.unique(fake_labels):
        r, f = real[real_labels == c], fake[fake_labels == c]
        if len(r) > K_DC and len(f) > K_DC:
            per_class[str(int(c))] = {**precision_recall(r, f), **density_coverage(r, f),
                                      "spread_ratio": spread(f) / max(spread(r), 1e-12)}
    out["per_class"] = per_class
    if per_class:  # the class-averaged figures: a per-label collapse shows here even if the classes differ
        for key in ("precision", "recall", "density", "coverage"):
            out[f"class_mean_{key}"] = float(np.mean([v[key] for v in per_class.values()]))
    return out


def memorization(samples, train, test, percentile: float = MEMORIZATION_PERCENTILE) -> dict:
    """Nearest-training-image distances of samples vs of held-out test images (any same-shape arrays).

    ``fraction_memorized``: samples closer to a training image than the test images' ``percentile``-th
    percentile distance (about percentile / 100 for a model that does not copy). Above
    MAX_TEST_FOR_THRESHOLD test images a fixed random subset sets the threshold: the 1st percentile of
    2000 distances is stable, and Fashion-MNIST's 10k x 60k distances would dominate a score's time."""
    # float32: images are in a small range, and a 60k-image training set stays 240 MB, not 480
    samples, train, test = (_points(a, name, dtype=np.float32) for a, name in
                            ((samples, "samples"), (train, "training images"), (test, "test images")))
    if not samples.shape[1] == train.shape[1] == test.shape[1]:
        raise EdgegenError(f"samples, training and test images differ in size: {samples.shape[1]}, "
                           f"{train.shape[1]}, {test.shape[1]}")
    if len(test) > MAX_TEST_FOR_THRESHOLD:
        test = test[np.sort(np.random.default_rng(0).choice(len(test), MAX_TEST_FOR_THRESHOLD, replace=False))]
    d_sample, nearest = nearest_distances(samples, train)
    d_test = _cached([test, train], "nn", lambda: nearest_distances(test, train)[0])
    threshold = float(np.percentile(d_test, percentile))
    return {"percentile": percentile, "threshold": threshold,
            "fraction_memorized": float(np.mean(d_sample < threshold)),
            "sample_nn_median": float(np.median(d_sample)), "test_nn_median": float(np.median(d_test)),
            "sample_nn_min": float(d_sample.min()), "test_nn_min": float(d_test.min()),
            "nearest_train": nearest, "sample_nn": d_sample}


def closest_pairs_png(path: Path, samples: np.ndarray, train: np.ndarray, mem: dict, pairs: int = 16) -> None:
    """PNG of the ``pairs`` samples closest to the training set: each column a sample above its nearest training image."""
    from edgegen.images import save_grid

    order = np.argsort(mem["sample_nn"])[:pairs]
    tiles = np.concatenate([samples[order], train[mem["nearest_train"][order]]])
    save_grid(Path(path), tiles, nrow=len(order))


def public(mem: dict) -> dict:
    """The JSON-ready part of a :func:`memorization` result (without the per-sample arrays)."""
    return {k: v for k, v in mem.items() if not isinstance(v, np.ndarray)}


def report(features, labels, test_features, test_labels, reference_features, reference_labels,
           images, train_images, test_images) -> dict:
    """The score-dict entries: diversity of the samples and of a same-n real reference, both against
    the test split's features, and the samples' memorization of the training images (pixel space).
    Diversity is None below K_DC + 1 samples (too few for k-nearest-neighbour balls), as FID works from 2."""
    mem = public(memorization(images, train_images, test_images))
    if len(features) <= K_DC:
        return {"diversity": None, "memorization": mem}
    ref = diversity(test_features, reference_features, test_labels, reference_labels)
    div = diversity(test_features, features, test_labels, labels)
    div["recall_vs_reference"] = div["recall"] / max(ref["recall"], 1e-12)
    div["coverage_vs_reference"] = div["coverage"] / max(ref["coverage"], 1e-12)
    div["reference"] = {k: v for k, v in ref.items() if k != "per_class"}
    return {"diversity": div, "memorization": mem}
