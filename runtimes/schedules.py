"""Noise schedules in float64: the single source of beta_t and alpha_bar_t.

Training converts these to float32 tensors; the plan compiler uses them as they are.
"""
from __future__ import annotations

import math

import numpy as np

SCHEDULES = ("linear", "cosine")


def betas(kind: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """beta_1..beta_T as a (T,) float64 array (index 0 is the first noising step)."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if kind == "linear":
        # Ho et al. 2020; endpoints scaled so other T keep the same overall noise level.
        scale = 1000.0 / T
        return np.linspace(scale * beta_start, scale * beta_end, T, dtype=np.float64)
    if kind == "cosine":
        # Nichol & Dhariwal 2021, s = 0.008, betas capped at 0.999.
        s = 0.008
        f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
        return np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)], dtype=np.float64)
    raise ValueError(f"unknown beta schedule '{kind}' (choose {', '.join(SCHEDULES)})")


def alpha_bar(kind: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), (T,) float64."""
    return np.cumprod(1.0 - betas(kind, T, beta_start, beta_end))
