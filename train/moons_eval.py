"""Scoring 2-D moons samples: sliced Wasserstein distance to fresh moons, and a scatter plot.

The reference ("floor") is the same distance between a second fresh sample of the same size
and the fresh sample, the value finite samples allow. Fresh samples are i.i.d. draws from the
moons distribution (data.sample_moons): make_moons sets are stratified (angles on a grid),
and their mutual distance is a floor no i.i.d. sampler reaches (exact i.i.d. moons score a
median ratio of about 2 against it). One floor draw is itself noisy (its ratio spread is
about +-30% at n = 2000), so the floor is the median over FLOOR_DRAWS second samples.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegen.train.data import load_moons, sample_moons
from edgegen.train.evaluator import sliced_wasserstein

FRESH_SEED = 101  # seeds 101 + k, k < 1 + FLOOR_DRAWS; the data splits use make_moons seeds 0 and 1
FLOOR_DRAWS = 8


def score_points(points: np.ndarray, noise: float = 0.05, seed: int = 0) -> dict:
    """{"sw": SW(points, fresh), "sw_fresh": median_k SW(fresh_k, fresh), "ratio": sw / sw_fresh, "n",
    "sw_fresh_draws", "sw_fresh_make_moons" (the stratified make_moons floor, for reference)}."""
    n = len(points)
    base = FRESH_SEED + 1000 * seed
    fresh = sample_moons(n, base, noise)
    sw = sliced_wasserstein(points, fresh, seed=seed)
    draws = [sliced_wasserstein(sample_moons(n, base + 1 + k, noise), fresh, seed=seed) for k in range(FLOOR_DRAWS)]
    ref = float(np.median(draws))
    grid = sliced_wasserstein(load_moons(n, base + 1, noise), load_moons(n, base, noise), seed=seed)
    return {"sw": sw, "sw_fresh": ref, "ratio": sw / ref, "n": n, "sw_fresh_draws": draws,
            "sw_fresh_make_moons": grid}


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
