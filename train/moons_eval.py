"""Scoring 2-D moons samples: sliced Wasserstein distance to fresh moons, and a scatter plot.

The reference is the same distance between two fresh moons samples of the same size
(different seeds from the training split), the floor that finite samples allow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegen.train.data import load_moons
from edgegen.train.evaluator import sliced_wasserstein

FRESH_SEEDS = (101, 102)  # never used for training (train split seed 0, test seed 1)


def score_points(points: np.ndarray, noise: float = 0.05, seed: int = 0) -> dict:
    """{"sw": SW(points, fresh), "sw_fresh": SW(fresh', fresh), "ratio": sw / sw_fresh, "n"}."""
    n = len(points)
    fresh_a = load_moons(n, FRESH_SEEDS[0] + 1000 * seed, noise)
    fresh_b = load_moons(n, FRESH_SEEDS[1] + 1000 * seed, noise)
    sw = sliced_wasserstein(points, fresh_a, seed=seed)
    ref = sliced_wasserstein(fresh_b, fresh_a, seed=seed)
    return {"sw": sw, "sw_fresh": ref, "ratio": sw / ref, "n": n}


def scatter_png(path: Path, points: np.ndarray, reference: np.ndarray | None = None, size: int = 400,
                extent: float = 3.0) -> None:
    """Scatter plot of ``points`` (blue) over ``reference`` (light grey) in [-extent, extent]^2, PNG."""
    from PIL import Image, ImageDraw

    from edgegen.paths import atomic_write_bytes
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def to_px(p: np.ndarray) -> np.ndarray:
        return np.clip((p * [1, -1] + extent) / (2 * extent) * (size - 1), 0, size - 1)

    for pts, color in ((reference, (200, 200, 200)), (points, (31, 119, 180))):
        if pts is None:
            continue
        for x, y in to_px(np.asarray(pts, dtype=np.float64)):
            draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill=color)
    import io
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())
