"""Image grids for people to look at (PNG through Pillow)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from edgegen.paths import atomic_write_bytes


def to_uint8(images: np.ndarray, value_range=(-1.0, 1.0)) -> np.ndarray:
    """(N, C, H, W) floats in value_range -> (N, H, W, C) uint8."""
    lo, hi = value_range
    x = (np.clip(images, lo, hi) - lo) / (hi - lo)
    return (x * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def grid(images: np.ndarray, nrow: int | None = None, scale: int = 4, pad: int = 1,
         value_range=(-1.0, 1.0)) -> Image.Image:
    """Tile (N, C, H, W) images into one picture, ``nrow`` per row, upscaled ``scale`` times."""
    tiles = to_uint8(images, value_range)
    n, h, w, c = tiles.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    rows = -(-n // nrow)
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 40, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = tiles[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def save_grid(path: Path, images: np.ndarray, nrow: int | None = None, **kw) -> None:
    buf = io.BytesIO()
    grid(images, nrow, **kw).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(Path(path), buf.getvalue())
