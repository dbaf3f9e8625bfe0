"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (Expat licence, (c) Zalando SE).

The package puts the original idx files under ``/usr/share/datasets/fashion-mnist/``;
``EDGEGEN_FASHION_DIR`` points elsewhere. Nothing is downloaded. The official split is kept:
60,000 train and 10,000 test images, 28x28 grey, 10 classes.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.train.idx import read_idx

APT_PACKAGE = "dataset-fashion-mnist"
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
DIR_ENV = "EDGEGEN_FASHION_DIR"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SIZES = {"train": 60_000, "test": 10_000}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
NATIVE_SIZE = 28


def fashion_dir() -> Path:
    """Where the idx files are read from: ``EDGEGEN_FASHION_DIR``, else the Debian package's folder."""
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise EdgegenError(f"Fashion-MNIST is not installed: no {stem}[.gz] in {root} "
                       f"(install it with: apt-get install {APT_PACKAGE})")


def load_fashion(split: str, root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The official ``"train"`` or ``"test"`` split: images (N, 28, 28) uint8 and labels (N,) int64,
    both read-only (cached in process)."""
    if split not in FILES:
        raise EdgegenError(f"unknown Fashion-MNIST split '{split}' (choose {', '.join(FILES)})")
    return _load(split, Path(root) if root is not None else fashion_dir())


@functools.lru_cache(maxsize=4)
def _load(split: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = (_find(root, stem) for stem in FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if (images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (NATIVE_SIZE, NATIVE_SIZE)
            or labels.shape != (len(images),) or (len(labels) and labels.max() >= len(CLASS_NAMES))):
        raise EdgegenError(f"{image_file} / {label_file} are not Fashion-MNIST "
                           f"(images {images.shape} {images.dtype}, labels {labels.shape})")
    labels = labels.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels
