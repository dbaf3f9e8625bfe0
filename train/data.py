"""Training data: image sets (scikit-learn digits, Fashion-MNIST, the user's own folder) and 2-D moons.

Images come out as ``(N, C, H, W)`` float32 in ``[-1, 1]``; points as ``(N, 2)`` float32,
standardized with fixed constants. Every split is deterministic (seed 0; Fashion-MNIST keeps its
official split), so the same spec and split always give the same arrays, and train and test never
overlap.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegen.errors import EdgegenError

DATASETS = ("digits", "fashion", "moons", "folder:PATH")
# The size an image set is made for: its models and evaluator use it unless told otherwise.
DEFAULT_IMAGE_SIZE = {"digits": 16, "fashion": 32}
FASHION_PADDED = 32  # Fashion-MNIST's 28x28 images, padded with background

IMAGE_SPLITS = ("train", "test", "all")
POINT_SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

TEST_FRACTION = 0.2
SPLIT_SEED = 0
MOONS_SPLIT_SEEDS = {"train": 0, "test": 1}
MOONS_REFERENCE_SEED = 12345
MOONS_REFERENCE_SIZE = 200_000


def _unknown(spec: str) -> EdgegenError:
    return EdgegenError(f"unknown data set '{spec}' (choose {', '.join(DATASETS)})")


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise EdgegenError(f"unknown split '{split}' (choose {', '.join(allowed)})")


@dataclass
class ImageDataset:
    """A set of images with integer class labels."""

    images: np.ndarray  # (N, C, H, W) float32 in [-1, 1]
    labels: np.ndarray  # (N,) int64; all 0 when unlabeled
    num_classes: int  # 0 when unlabeled
    name: str

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class PointDataset:
    """A set of 2-D points with the index of the component each one came from."""

    points: np.ndarray  # (N, 2) float32, standardized
    labels: np.ndarray  # (N,) int64
    num_classes: int
    name: str

    def __len__(self) -> int:
        return len(self.points)


# ----------------------------------------------------------------------------- images


def load_images(spec: str, split: str = "train", image_size: int = 16, channels: int = 1) -> ImageDataset:
    """Load an image data set: ``"digits"``, ``"fashion"`` or ``"folder:PATH"``.

    ``split`` is ``"train"`` (80%), ``"test"`` (20%) or ``"all"``; the split is fixed (seed 0)
    and stratified by class when the set has labels. ``"fashion"`` keeps the official 60,000 /
    10,000 split, pads the 28x28 images to 32x32 and resizes them when ``image_size`` is not 32.
    """
    _check_split(split, IMAGE_SPLITS)
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise EdgegenError(f"image size must be a positive integer, got {image_size!r}")
    if channels not in (1, 3):
        raise EdgegenError(f"channels must be 1 or 3, got {channels!r}")
    image_size = int(image_size)

    if spec == "digits":
        if channels != 1:
            raise EdgegenError(f"the digits data set has 1 channel, got channels={channels}")
        images, labels = _digits(image_size)
        num_classes, name = 10, "digits"
    elif spec == "fashion":
        if channels != 1:
            raise EdgegenError(f"the fashion data set has 1 channel, got channels={channels}")
        from edgegen.train.fashion import fashion_dir
        images, labels = _fashion(split, image_size, fashion_dir())
        return ImageDataset(images=np.array(images, dtype=np.float32), labels=np.array(labels, dtype=np.int64),
                            num_classes=10, name="fashion")
    elif spec.startswith("folder:"):
        images, labels, num_classes = _folder(spec[len("folder:"):], image_size, channels)
        name = spec
    elif spec == "moons":
        raise EdgegenError("'moons' is a 2-D point data set, not images "
                           "(use an image data set: digits, fashion, folder:PATH)")
    else:
        raise _unknown(spec)

    if split != "all":
        train_idx, test_idx = _split_indices(labels, stratify=num_classes > 0)
        idx = train_idx if split == "train" else test_idx
        if len(idx) == 0:
            raise EdgegenError(f"data set '{spec}' has too few images ({len(labels)}) for a {split} split")
        images, labels = images[idx], labels[idx]
    # Copies, so callers may modify them without touching the in-process cache.
    return ImageDataset(images=np.array(images, dtype=np.float32), labels=np.array(labels, dtype=np.int64),
                        num_classes=num_classes, name=name)


def _split_indices(labels: np.ndarray, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Fixed 80/20 split of ``range(len(labels))``: (train indices, test indices), each sorted.

    Stratified by label when asked and possible (every class has at least 2 members and both
    parts can hold one of each class); otherwise a seeded permutation.
    """
    from sklearn.model_selection import train_test_split

    n = len(labels)
    if n < 2:
        return np.arange(n), np.arange(0)
    n_test = int(np.ceil(TEST_FRACTION * n))
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    can_stratify = counts.min() >= 2 and len(counts) <= min(n_test, n - n_test)
    train_idx, test_idx = train_test_split(
        np.arange(n), test_size=TEST_FRACTION, random_state=SPLIT_SEED,
        stratify=labels if stratify and can_stratify else None,
    )
    return np.sort(train_idx), np.sort(test_idx)


@functools.lru_cache(maxsize=4)
def _digits(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 scikit-learn digits: images (1797, 1, S, S) float32 in [-1, 1], labels (1797,) int64."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 8.0 - 1.0)[:, None]  # (N, 1, 8, 8)
    if image_size != x.shape[-1]:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = x.clamp(-1.0, 1.0).numpy().astype(np.float32)  # (N, 1, S, S)
    images.setflags(write=False)
    labels = digits.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


@functools.lru_cache(maxsize=2)
def _fashion(split: str, image_size: int, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's official split: images (N, 1, S, S) float32 in [-1, 1], labels (N,) int64.

    The 28x28 images are padded to 32x32 with background (-1), as the networks want sizes
    divisible by 2^levels, then resized bilinearly (antialiased) when S is not 32.
    """
    import torch
    import torch.nn.functional as F

    from edgegen.train.fashion import load_fashion

    parts = [load_fashion(s, root) for s in (("train", "test") if split == "all" else (split,))]
    raw = np.concatenate([p[0] for p in parts])  # (N, 28, 28) uint8
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    pad = (FASHION_PADDED - raw.shape[-1]) // 2
    x = torch.from_numpy(raw.astype(np.float32) / 127.5 - 1.0)[:, None]  # (N, 1, 28, 28)
    x = F.pad(x, (pad,) * 4, value=-1.0)  # (N, 1, 32, 32)
    if image_size != FASHION_PADDED:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                          antialias=image_size < FASHION_PADDED).clamp(-1.0, 1.0)
    images = x.numpy()
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (not hidden), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def folder_classes(path: str) -> list[tuple[Path, list[Path]]]:
    """The classes of an image folder: (subfolder, its image files) for every subfolder that holds
    images, sorted by name; empty when the folder is unlabeled."""
    root = Path(path).expanduser()
    if not path or not root.is_dir():
        raise EdgegenError(f"image folder not found: {root}")
    return [(d, files) for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            if (files := _image_files(d))]


def _folder(path: str, image_size: int, channels: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Read a folder of images: (images (N, C, S, S) float32 in [-1, 1], labels (N,), num_classes).

    Subfolders that contain images are classes (sorted by name; images directly in ``path``
    are then ignored); otherwise the images in ``path`` form one unlabeled set.
    """
    root = Path(path).expanduser()
    classes = folder_classes(path)
    if classes:
        files = [f for _, fs in classes for f in fs]
        labels = np.concatenate([np.full(len(fs), k, dtype=np.int64) for k, (_, fs) in enumerate(classes)])
        num_classes = len(classes)
    else:
        files = _image_files(root)
        labels = np.zeros(len(files), dtype=np.int64)
        num_classes = 0
    if not files:
        raise EdgegenError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    images = np.stack([_read_image(f, image_size, channels) for f in files])  # (N, C, S, S)
    return images, labels, num_classes


def _read_image(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image file as (C, S, S) float32 in [-1, 1]."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            img = img.resize((image_size, image_size), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32)  # (S, S) or (S, S, 3), 0..255
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise EdgegenError(f"cannot read image {path}: {e}") from None
    arr = arr.reshape(image_size, image_size, channels).transpose(2, 0, 1)  # (C, S, S)
    return arr / 127.5 - 1.0


# ----------------------------------------------------------------------------- points


def load_moons(n: int, seed: int, noise: float = 0.05) -> np.ndarray:
    """``n`` two-moons points, (n, 2) float32, standardized with fixed per-noise constants."""
    return _moons(n, seed, noise)[0]


def sample_moons(n: int, seed: int, noise: float = 0.05) -> np.ndarray:
    """``n`` i.i.d. draws from the two-moons distribution, (n, 2) float32, standardized like load_moons.

    make_moons places each moon's points on an evenly spaced angle grid (np.linspace), so its
    sets are stratified, not random: two of them differ far less than two i.i.d. samples do,
    and a perfect sampler could not match them. Here the angles are uniform at random; as in
    make_moons, the first n // 2 points are the outer moon (label 0), the rest the inner one."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise EdgegenError(f"number of points must be a positive integer, got {n!r}")
    if not np.isfinite(noise) or noise < 0:
        raise EdgegenError(f"moons noise must be >= 0, got {noise!r}")
    g = np.random.default_rng(int(seed))
    n_out = int(n) // 2
    theta = g.uniform(0.0, np.pi, int(n))
    outer = np.stack([np.cos(theta[:n_out]), np.sin(theta[:n_out])], axis=1)
    inner = np.stack([1.0 - np.cos(theta[n_out:]), 0.5 - np.sin(theta[n_out:])], axis=1)
    points = np.concatenate([outer, inner]) + noise * g.standard_normal((int(n), 2))
    mean, std = _moons_standardization(float(noise))
    return ((points - mean) / std).astype(np.float32)


def load_points(spec: str, split: str = "train", n: int = 4096, noise: float = 0.05) -> PointDataset:
    """Load a 2-D point data set; only ``"moons"`` (train split seed 0, test split seed 1)."""
    _check_split(split, POINT_SPLITS)
    if spec != "moons":
        if spec in ("digits", "fashion") or spec.startswith("folder:"):
            raise EdgegenError(f"'{spec}' is an image data set, not 2-D points (use moons)")
        raise _unknown(spec)
    points, labels = _moons(n, MOONS_SPLIT_SEEDS[split], noise)
    return PointDataset(points=points, labels=labels, num_classes=2, name="moons")


def _moons(n: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Standardized moons: points (n, 2) float32 and the moon index (n,) int64."""
    from sklearn.datasets import make_moons

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise EdgegenError(f"number of points must be a positive integer, got {n!r}")
    if not np.isfinite(noise) or noise < 0:
        raise EdgegenError(f"moons noise must be >= 0, got {noise!r}")
    points, labels = make_moons(n_samples=int(n), noise=float(noise), random_state=int(seed))
    mean, std = _moons_standardization(float(noise))
    return ((points - mean) / std).astype(np.float32), labels.astype(np.int64)


@functools.lru_cache(maxsize=8)
def _moons_standardization(noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (each (2,)) of a large reference moons sample (seed 12345) at this noise."""
    from sklearn.datasets import make_moons

    ref, _ = make_moons(n_samples=MOONS_REFERENCE_SIZE, noise=noise, random_state=MOONS_REFERENCE_SEED)
    return ref.mean(axis=0), ref.std(axis=0)


@dataclass
class DataConfig:
    """The image data section of a family's config (ddpm, gan, vqvae/dalle): where the images come
    from and the size the network is built for."""
    source: str = "digits"  # digits | fashion (use image_size 32) | folder:PATH (labelled subfolders: class-conditional)
    image_size: int = 16
    channels: int = 1
