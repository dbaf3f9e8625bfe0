"""The evaluator for labeled image data: a small CNN classifier whose penultimate features give an FID.

One :class:`Evaluator` per data set (``digits``, ``fashion``, a labeled ``folder:PATH``) and
image shape. Samples from a generative model are scored against that data set's held-out *test*
split: Fréchet distance (FID) of the classifier's features ("digit-FID", "fashion-FID"), and, for
class-conditional samples, the classifier's accuracy on the requested labels. Each classifier is
trained once on the CPU and cached under ``cache_dir() / "evaluator" / NAME`` (:func:`evaluator_dir`;
the 1x16x16 digits one keeps its historical folder ``digits-cnn``):

- ``model.safetensors``: the weights,
- ``config.json``: data set, architecture, training settings, test accuracy,
- ``references.json``: reference FIDs that put a model's score in context.

A folder's evaluator also records a fingerprint of its images, so it is retrained when they change.

Also here, for reuse: :func:`frechet_distance` and :func:`sliced_wasserstein` (for 2-D points).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from edgegen.errors import EdgegenError
from edgegen.paths import atomic_dir, atomic_write_text, cache_dir

FORMAT_VERSION = 1
IMAGE_SIZE = 16
EVALUATOR_SUBDIR = ("evaluator", "digits-cnn")
MODEL_FILE, CONFIG_FILE, REFERENCES_FILE = "model.safetensors", "config.json", "references.json"

# Architecture: conv 32 -> pool -> conv 64 -> pool -> conv 128 -> global average pool
# -> Linear(128, 64) (the features) -> ReLU -> Linear(64, 10).
ARCHITECTURE = {
    "channels": [32, 64, 128],
    "pool_after": [True, True, False],
    "feature_dim": 64,
    "num_classes": 10,
    "image_size": IMAGE_SIZE,
}
TRAINING = {
    "seed": 0,
    "epochs": 20,
    "batch_size": 64,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "max_shift": 1,  # random shifts of up to this many pixels
    "noise_std": 0.05,  # additive Gaussian noise
}
# Fashion-MNIST at 32x32 (60,000 training images): narrower layers and fewer epochs keep the
# one-thread training to minutes (6 epochs of about a minute on a free core). The last 8x8 map
# is kept whole (pool_to = S / 4): clothes differ by silhouette, and global pooling lost about
# 4 points (87% after 5 epochs; 4x4: 90.8% after 8; 8x8: 91.3% after 6).
FASHION_ARCHITECTURE = {
    "channels": [16, 32, 64],
    "pool_after": [True, True, False],
    "feature_dim": 64,
    "num_classes": 10,
    "image_size": 32,
    "pool_to": 8,
}
FASHION_TRAINING = dict(TRAINING, epochs=6, batch_size=128)
MIN_CLASSES = 2
# A folder may hold a few dozen images: train it for at least as many steps as digits get
# (20 epochs of 23 batches), however few batches an epoch has.
MIN_STEPS = 460
REFERENCE_SEED = 0
N_NOISE_REFERENCE = 1000
N_TRAIN_SUBSAMPLE = 360  # digits: the size of its test split (other data sets: theirs)
REFERENCE_KEYS = ("fid_train_vs_test", "fid_noise_vs_test", "fid_train_subsample_vs_test", "n_test", "test_accuracy")
FEATURE_BATCH = 512


# ----------------------------------------------------------------------------- metrics


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``. When the matrix square
    root is not finite (singular product), ``eps * I`` is added to both covariances; small
    imaginary parts from numerical error are dropped. Scalars are treated as 1-D Gaussians
    (``sigma`` is then the variance). The result is clipped at 0.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"mismatched Gaussian shapes: mu {mu1.shape}, {mu2.shape}; sigma {sigma1.shape}, {sigma2.shape}")

    def sqrt_product(offset: float) -> np.ndarray:
        shift = offset * np.eye(d)
        with warnings.catch_warnings():  # a singular product is handled below
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            return linalg.sqrtm((sigma1 + shift) @ (sigma2 + shift))

    covmean = sqrt_product(0.0)
    if not np.isfinite(covmean).all() or (
            np.iscomplexobj(covmean) and not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)):
        covmean = sqrt_product(eps)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return max(float(value), 0.0)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance (SW-2) between point sets a (Na, D) and b (Nb, D).

    ``sqrt(mean over random unit directions theta of W2^2(a . theta, b . theta))``, with the 1-D
    W2 from sorted projections (at ``max(Na, Nb)`` matching quantiles when the sizes differ).
    Same ``seed`` gives the same directions, so values are comparable across calls. For a set
    and its copy shifted by ``t`` in 2-D it is close to ``|t| / sqrt(2)``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise EdgegenError(f"sliced Wasserstein needs two non-empty (N, D) point sets, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(a.shape[1], n_projections))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)  # (D, P) unit columns
    pa, pb = np.sort(a @ directions, axis=0), np.sort(b @ directions, axis=0)  # (Na, P), (Nb, P)
    if len(pa) != len(pb):
        levels = (np.arange(max(len(pa), len(pb))) + 0.5) / max(len(pa), len(pb))
        pa, pb = np.quantile(pa, levels, axis=0), np.quantile(pb, levels, axis=0)  # (M, P)
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


# ----------------------------------------------------------------------------- network


class ClassifierCNN(nn.Module):
    """Conv/BN/ReLU blocks (optionally max-pooled), average pool to ``pool_to`` x ``pool_to`` (1: global),
    feature layer, classifier."""

    def __init__(self, channels: list[int], pool_after: list[bool], feature_dim: int, num_classes: int,
                 image_size: int = IMAGE_SIZE, in_channels: int = 1, pool_to: int = 1):
        super().__init__()
        blocks, c_in = [], in_channels
        for c_out, pool in zip(channels, pool_after):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            if pool:
                blocks.append(nn.MaxPool2d(2))
            c_in = c_out
        # Global pooling suits centred digits; clothes are told apart by their silhouettes, so
        # fashion keeps a coarse pool_to x pool_to layout.
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(pool_to), nn.Flatten())  # (N, C_last * pool_to^2)
        self.feature = nn.Linear(c_in * pool_to * pool_to, feature_dim)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, feature_dim) penultimate features (before the ReLU)."""
        return self.feature(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, num_classes) logits."""
        return self.classifier(F.relu(self.features(x)))


DigitCNN = ClassifierCNN  # the name it had when digits were the only data set


def _augment(x: torch.Tensor, generator: torch.Generator, max_shift: int, noise_std: float) -> torch.Tensor:
    """Shift each image (N, C, H, W) by up to ``max_shift`` pixels (filling with -1) and add noise."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)  # (N, C, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)  # (N, 2) top-left corners
    rows = offsets[:, 0, None] + torch.arange(h)  # (N, H)
    cols = offsets[:, 1, None] + torch.arange(w)  # (N, W)
    batch = torch.arange(n)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return shifted + noise_std * torch.randn(x.shape, generator=generator)


def _train(architecture: dict, training: dict, progress: bool, data: "EvalData | None" = None) -> ClassifierCNN:
    """Train the classifier on the train split of ``data`` (default: 1x16x16 digits) on the CPU,
    deterministically.

    Runs on one thread: bit-for-bit reproducible whatever the core count, and not slowed down
    by thread oversubscription when other processes share the CPU (digits: about 10 s; fashion:
    a few minutes).
    """
    data = data or EvalData()
    train = data.load("train")
    x, y = torch.from_numpy(train.images), torch.from_numpy(train.labels)  # (N, C, S, S), (N,)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        return _fit(architecture, training, x, y, progress, data.source)
    finally:
        torch.set_num_threads(threads)


def _fit(architecture: dict, training: dict, x: torch.Tensor, y: torch.Tensor, progress: bool,
         name: str = "digits") -> ClassifierCNN:
    """The training loop: AdamW with a one-cycle schedule, shifted and noisy mini-batches."""
    from tqdm.auto import tqdm

    batch_size, epochs = training["batch_size"], training["epochs"]
    steps_per_epoch = -(-len(x) // batch_size)
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
        torch.manual_seed(training["seed"])
        generator = torch.Generator().manual_seed(training["seed"])
        model = ClassifierCNN(**architecture)
        optimizer = torch.optim.AdamW(model.parameters(), lr=training["lr"], weight_decay=training["weight_decay"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=training["lr"],
                                                       total_steps=epochs * steps_per_epoch)
        model.train()
        bar = tqdm(range(epochs), desc=f"training {name} evaluator", unit="epoch", disable=not progress, leave=False)
        for _ in bar:
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                xb = _augment(x[idx], generator, training["max_shift"], training["noise_std"])
                loss = F.cross_entropy(model(xb), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item() * len(idx)
            bar.set_postfix(loss=f"{total / len(x):.4f}")
    return model.eval()


# ----------------------------------------------------------------------------- data sets


@dataclass(frozen=True)
class EvalData:
    """The labeled image data an evaluator is trained on and scores against."""

    source: str = "digits"  # digits | fashion | folder:PATH (class subfolders)
    image_size: int = IMAGE_SIZE
    channels: int = 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.image_size, self.image_size

    def load(self, split: str):
        from edgegen.train.data import load_images

        return load_images(self.source, split, self.image_size, self.channels)

    def folder_name(self) -> str:
        """The cache folder's name: ``digits-cnn`` for 1x16x16 digits (as before), else
        ``SOURCE-CxSxS-cnn``; a folder's name adds a hash of its absolute path."""
        if self == EvalData():
            return EVALUATOR_SUBDIR[-1]
        if self.source.startswith("folder:"):
            path = Path(self.source[len("folder:"):]).expanduser().resolve()
            slug = re.sub(r"[^A-Za-z0-9_-]+", "_", path.name)[:40] or "root"
            digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
            name = f"folder-{slug}-{digest}"
        else:
            name = self.source
        return f"{name}-{self.channels}x{self.image_size}x{self.image_size}-cnn"


def unavailable(source: str, shape) -> str | None:
    """Why no evaluator scores ``source`` samples of ``shape`` (C, S, S), in one line; None if one does."""
    from edgegen.train.data import folder_classes

    shape = tuple(int(v) for v in shape)
    if source == "moons":
        return "moons models are 2-D points: they are scored by sliced Wasserstein distance, not an image evaluator"
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] not in (1, 3):
        return f"the evaluator scores square 1- or 3-channel images, not shape {list(shape)}"
    if source in ("digits", "fashion"):
        return None if shape[0] == 1 else f"{source} images have 1 channel, this model makes {list(shape)}"
    if source.startswith("folder:"):
        try:
            classes = folder_classes(source[len("folder:"):])
        except EdgegenError as e:
            return f"cannot score {source}: {e}"
        if len(classes) < MIN_CLASSES:
            return (f"{source} is not labeled: the evaluator needs one subfolder of images per class "
                    f"(at least {MIN_CLASSES}, e.g. PATH/cat/*.png and PATH/dog/*.png) to train its classifier")
        return None
    return f"no evaluator for data set '{source}' (digits, fashion, or a labeled folder:PATH)"


def recipe(data: EvalData, num_classes: int = 10, n_train: int | None = None) -> tuple[dict, dict]:
    """(architecture, training) of the classifier for ``data``: the digits ones (unchanged, so cached
    digits scores stay valid), narrower and shorter for Fashion-MNIST's 60,000 images, the digits
    ones for a labeled folder of ``n_train`` training images, with at least MIN_STEPS steps."""
    if data.source == "fashion":
        architecture, training = dict(FASHION_ARCHITECTURE), dict(FASHION_TRAINING)
        architecture["pool_to"] = max(1, data.image_size // 4)  # the whole last feature map
    else:
        architecture, training = dict(ARCHITECTURE, num_classes=num_classes), dict(TRAINING)
    if data.source.startswith("folder:") and n_train:
        steps_per_epoch = -(-n_train // training["batch_size"])
        training["epochs"] = max(training["epochs"], -(-MIN_STEPS // steps_per_epoch))
    architecture["image_size"] = data.image_size
    if data.channels != 1:
        architecture["in_channels"] = data.channels
    return architecture, training


def fingerprint(data: EvalData) -> str | None:
    """sha256 of a folder's images and labels (both splits), so a changed folder is retrained; None
    for the fixed data sets."""
    if not data.source.startswith("folder:"):
        return None
    h = hashlib.sha256()
    for split in ("train", "test"):
        d = data.load(split)
        h.update(d.images.tobytes())
        h.update(d.labels.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- evaluator


class Evaluator:
    """Scores images (N, C, S, S) in [-1, 1] against the held-out test split of its data set."""

    def __init__(self, model: ClassifierCNN, config: dict, references: dict | None = None, path: Path | None = None):
        self.model = model.eval()
        self.config = config
        # Caches written before other data sets existed are digits ones.
        self.data = EvalData(**config.get("data", {"image_size": config["architecture"]["image_size"]}))
        self.path = path  # cache folder; references.json is (re)written there when computed
        self._references = references
        self._test_stats: tuple[np.ndarray, np.ndarray] | None = None
        self._splits: dict = {}

    def split(self, name: str):
        """The ``"train"`` or ``"test"`` split of this evaluator's data set (loaded once)."""
        if name not in self._splits:
            self._splits[name] = self.data.load(name)
        return self._splits[name]

    @property
    def test_accuracy(self) -> float:
        return float(self.config["test_accuracy"])

    def _check(self, images, min_n: int) -> np.ndarray:
        """Validate images as (N, C, S, S) with N >= min_n and finite values; return a float32 copy."""
        arr = np.asarray(images)
        c, size, _ = self.data.shape
        if arr.ndim != 4 or arr.shape[1:] != (c, size, size) or arr.shape[0] < min_n:
            raise EdgegenError(f"the {self.data.source} evaluator needs images of shape (N, {c}, {size}, {size}) "
                               f"with N >= {min_n}, got {tuple(arr.shape)}")
        arr = np.array(arr, dtype=np.float32)  # writable and contiguous, for torch.from_numpy
        if not np.isfinite(arr).all():
            raise EdgegenError("images contain NaN or infinite values")
        return arr

    def _batched(self, fn, images: np.ndarray) -> np.ndarray:
        """Apply ``fn`` to (B, C, S, S) tensors in batches; concatenate the outputs."""
        self.model.eval()
        with torch.no_grad():
            return np.concatenate([fn(torch.from_numpy(images[i:i + FEATURE_BATCH])).numpy()
                                   for i in range(0, len(images), FEATURE_BATCH)])

    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate features: images (N, C, S, S) -> (N, D) float64."""
        return self._batched(self.model.features, self._check(images, 1)).astype(np.float64)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Predicted classes: images (N, C, S, S) -> (N,) int64."""
        return self._batched(lambda x: self.model(x).argmax(dim=1), self._check(images, 1)).astype(np.int64)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        """Fraction of images (N, C, S, S) classified as their labels (N,)."""
        images = self._check(images, 1)
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise EdgegenError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
        return float(np.mean(self.predict(images) == labels))

    def test_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Feature mean (D,) and covariance (D, D) of the test split (computed once)."""
        if self._test_stats is None:
            self._test_stats = gaussian_stats(self.features(self.split("test").images))
        return self._test_stats

    def fid(self, images: np.ndarray) -> float:
        """FID of images (N >= 2, C, S, S) against the test split."""
        mu, sigma = gaussian_stats(self.features(self._check(images, 2)))
        return frechet_distance(mu, sigma, *self.test_stats())

    def references(self) -> dict:
        """Reference FIDs against the test split (see :data:`REFERENCE_KEYS`), cached on disk."""
        if self._references is None:
            self._references = self._compute_references()
            if self.path is not None:
                atomic_write_text(self.path / REFERENCES_FILE, json.dumps(self._references, indent=2) + "\n")
        return dict(self._references)

    def _compute_references(self) -> dict:
        train = self.split("train").images  # (N_train, C, S, S); digits (1437, 1, 16, 16)
        n_test = len(self.split("test"))
        rng = np.random.default_rng(REFERENCE_SEED)
        noise = rng.uniform(-1.0, 1.0, size=(N_NOISE_REFERENCE, *train.shape[1:])).astype(np.float32)
        # Real images at the test split's size (digits: N_TRAIN_SUBSAMPLE).
        subsample = train[np.sort(rng.choice(len(train), size=min(n_test, len(train)), replace=False))]
        return {
            "fid_train_vs_test": self.fid(train),
            "fid_noise_vs_test": self.fid(noise),
            "fid_train_subsample_vs_test": self.fid(subsample),
            "n_test": n_test,
            "test_accuracy": self.test_accuracy,
        }

    def score(self, images: np.ndarray, labels: np.ndarray | None = None) -> dict:
        """FID (and accuracy on ``labels`` when given) of images (N >= 2, C, S, S), with references."""
        images = self._check(images, 2)
        refs = self.references()
        # FID is biased upward at small n: also give real images at the same n as the floor.
        train = self.split("train").images
        m = min(len(images), len(train))
        pick = np.random.default_rng(REFERENCE_SEED).choice(len(train), size=m, replace=False)
        refs.update({"same_n": m, "fid_train_same_n_vs_test": self.fid(train[np.sort(pick)])})
        from edgegen.train import quality  # diversity and memorization (issue 21), against the same references
        test, pick = self.split("test"), np.sort(pick)
        extra = quality.report(self.features(images), labels, self.features(test.images), test.labels,
                               self.features(train[pick]), self.split("train").labels[pick],
                               images, train, test.images)
        return {
            "n": len(images),
            "fid": self.fid(images),
            "accuracy": None if labels is None else self.accuracy(images, labels),
            "references": refs,
            **extra,
        }


DigitEvaluator = Evaluator  # the name it had when digits were the only data set


def _digits(split: str):
    from edgegen.train.data import load_images

    return load_images("digits", split, image_size=IMAGE_SIZE)


def evaluator_dir(cache: Path | None = None, data: EvalData | None = None) -> Path:
    """The cache folder of the evaluator for ``data`` (default 1x16x16 digits) under ``cache``
    (default :func:`cache_dir`)."""
    root = Path(cache if cache is not None else cache_dir()).joinpath(*EVALUATOR_SUBDIR[:-1])
    return root / (data or EvalData()).folder_name()


def get_evaluator(cache: Path | None = None, progress: bool = True, data: EvalData | None = None) -> Evaluator:
    """Load the cached evaluator for ``data`` (default 1x16x16 digits) from ``cache`` (default
    :func:`cache_dir`), or train and cache it.

    A missing, corrupt or outdated cache is rebuilt (digits: seconds; fashion: minutes, on the CPU).
    An unlabeled folder or data without an evaluator gets a one-line EdgegenError.
    """
    data = data or EvalData()
    reason = unavailable(data.source, data.shape)
    if reason:
        raise EdgegenError(reason)
    folder = evaluator_dir(cache, data)
    stamp = fingerprint(data)
    evaluator = _load(folder)
    if evaluator is None or evaluator.data != data or evaluator.config.get("fingerprint") != stamp:
        evaluator = _build(folder, progress, data, stamp)
    return evaluator


def evaluator_for(source: str, shape, cache: Path | None = None, progress: bool = True) -> Evaluator:
    """The evaluator for a model of data set ``source`` whose samples are ``shape`` (C, S, S), as a
    bundle manifest records them (``data.source``, ``sample_shape``)."""
    shape = tuple(int(v) for v in shape)
    reason = unavailable(source, shape)
    if reason:
        raise EdgegenError(reason)
    return get_evaluator(cache, progress, EvalData(source, shape[1], shape[0]))


def _load(folder: Path) -> Evaluator | None:
    """The evaluator cached in ``folder``, or None when it is missing, corrupt or outdated."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        if config.get("format_version") != FORMAT_VERSION:
            return None
        model = ClassifierCNN(**config["architecture"])
        state = load_file(folder / MODEL_FILE)
        if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
            return None
        model.load_state_dict(state, strict=True)
        float(config["test_accuracy"])
        evaluator = Evaluator(model, config, _load_references(folder), path=folder)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, SafetensorError):
        return None
    return evaluator


def _load_references(folder: Path) -> dict | None:
    """references.json if it is complete and numeric, else None (recomputed on first use)."""
    try:
        refs = json.loads((folder / REFERENCES_FILE).read_text())
        if isinstance(refs, dict) and all(isinstance(refs.get(k), (int, float)) for k in REFERENCE_KEYS):
            return refs
    except (OSError, ValueError):
        pass
    return None


def _build(folder: Path, progress: bool, data: EvalData | None = None, stamp: str | None = None) -> Evaluator:
    """Train the evaluator, measure it, and write the whole cache folder atomically."""
    from safetensors.torch import save_file

    data = data or EvalData()
    test = data.load("test")
    architecture, training = recipe(data, max(int(test.num_classes), MIN_CLASSES), len(data.load("train")))
    start = time.perf_counter()
    model = _train(architecture, training, progress, data)
    train_seconds = time.perf_counter() - start
    config = {
        "format_version": FORMAT_VERSION,
        "data": asdict(data),
        "architecture": architecture,
        "training": training,
        "training_seed": training["seed"],
        "test_accuracy": 0.0,
        "train_seconds": round(train_seconds, 2),
    }
    if stamp is not None:
        config["fingerprint"] = stamp
    evaluator = Evaluator(model, config)
    config["test_accuracy"] = evaluator.accuracy(test.images, test.labels)
    references = evaluator.references()
    with atomic_dir(folder, wait=600) as tmp:  # another process may be filling the same cache
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / MODEL_FILE))
        atomic_write_text(tmp / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        atomic_write_text(tmp / REFERENCES_FILE, json.dumps(references, indent=2) + "\n")
    evaluator.path = folder
    return evaluator
