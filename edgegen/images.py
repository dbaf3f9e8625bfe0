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


def _open(path: Path, what: str) -> Image.Image:
    from edgegen.errors import EdgegenError
    try:
        img = Image.open(path)
        img.load()
        return img
    except (OSError, ValueError) as e:  # missing file, not an image
        raise EdgegenError(f"cannot read the {what} {path}: {str(e).splitlines()[0]}") from None


CHANNELS = {"1": 1, "L": 1, "I;16": 1, "RGB": 3}  # Pillow modes whose channels are unambiguous


def read_image(path: Path, shape, value_range=(-1.0, 1.0)) -> np.ndarray:
    """A PNG (or any Pillow format) -> (C, H, W) float32 in ``value_range``; ``shape`` (C, H, W) is
    what the model takes: another size or channel count is a one-line error, not a resize."""
    from edgegen.errors import EdgegenError
    img = _open(path, "init image")
    c, h, w = (int(d) for d in shape)
    if (img.height, img.width) != (h, w):
        raise EdgegenError(f"the init image {path} is {img.width}x{img.height}, this model takes {w}x{h} images")
    if CHANNELS.get(img.mode) != c:
        got = f"{CHANNELS[img.mode]} channel(s)" if img.mode in CHANNELS else f"mode {img.mode}"
        raise EdgegenError(f"the init image {path} has {got}, this model takes {c} channel(s) "
                           f"({'greyscale' if c == 1 else 'RGB'})")
    a = np.asarray(img.convert("L" if c == 1 else "RGB"), dtype=np.float32) / 255.0
    a = a[None] if c == 1 else a.transpose(2, 0, 1)
    lo, hi = value_range
    return (lo + (hi - lo) * a).astype(np.float32)


def read_mask(path: Path, size) -> np.ndarray:
    """A binary mask image (white 255 = generate, black 0 = keep) -> (H, W) float32 of 1/0."""
    from edgegen.errors import EdgegenError
    img = _open(path, "mask")
    h, w = (int(d) for d in size)
    if (img.height, img.width) != (h, w):
        raise EdgegenError(f"the mask {path} is {img.width}x{img.height}, it must be {w}x{h} like the image")
    if img.mode not in ("1", "L"):
        raise EdgegenError(f"the mask {path} must be a greyscale image of black (keep) and white (generate), "
                           f"got mode {img.mode}")
    a = np.asarray(img.convert("L"))
    if not np.all((a == 0) | (a == 255)):
        raise EdgegenError(f"the mask {path} is not binary: use only black (0, keep) and white (255, generate)")
    return (a == 255).astype(np.float32)


def save_image(path: Path, image: np.ndarray, value_range=(-1.0, 1.0)) -> None:
    """One (C, H, W) image as a PNG at its own size (read_image reads it back)."""
    tile = to_uint8(image[None], value_range)[0]
    buf = io.BytesIO()
    Image.fromarray(tile[..., 0] if tile.shape[-1] == 1 else tile).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())
