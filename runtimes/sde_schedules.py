"""The VP and VE SDEs of Song et al. 2021 (their eq. 9 and 11 limits): the single source of
their coefficients, in float64 for the plan compiler and in float32 torch for training.

Forward SDE dx = f(t) x dt + g(t) dw, perturbation kernel x_t = m(t) x_0 + sigma(t) z.
    VP: beta(t) = b_min + t (b_max - b_min), f = -beta/2, g^2 = beta,
        m = exp(-t^2 (b_max - b_min)/4 - t b_min/2), sigma^2 = 1 - m^2, prior N(0, I)
    VE: sigma(t) = s_min (s_max / s_min)^t, f = 0, g^2 = d sigma^2/dt = 2 sigma^2 ln(s_max/s_min),
        m = 1, prior N(0, s_max^2 I)
Functions accept numpy arrays / floats or torch tensors and return the same kind.
"""
from __future__ import annotations

import math

import numpy as np

KINDS = ("vp", "ve")


def _lib(t):
    if type(t).__module__.startswith("torch"):
        import torch
        return torch
    return np


class SDE:
    def __init__(self, kind: str = "vp", beta_min: float = 0.1, beta_max: float = 20.0,
                 sigma_min: float = 0.01, sigma_max: float = 50.0):
        if kind not in KINDS:
            raise ValueError(f"unknown SDE '{kind}' (choose {', '.join(KINDS)})")
        self.kind, self.beta_min, self.beta_max = kind, float(beta_min), float(beta_max)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    @staticmethod
    def from_json(d: dict) -> "SDE":
        return SDE(d["kind"], d.get("beta_min", 0.1), d.get("beta_max", 20.0),
                   d.get("sigma_min", 0.01), d.get("sigma_max", 50.0))

    def to_json(self) -> dict:
        if self.kind == "vp":
            return {"kind": "vp", "beta_min": self.beta_min, "beta_max": self.beta_max}
        return {"kind": "ve", "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def mean_coef(self, t):
        """m(t)."""
        if self.kind == "ve":
            return t * 0 + 1.0
        return _lib(t).exp(-0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min)

    def sigma(self, t):
        if self.kind == "ve":
            return self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        lib = _lib(t)
        return lib.sqrt(-lib.expm1(-0.5 * t**2 * (self.beta_max - self.beta_min) - t * self.beta_min))

    def drift_coef(self, t):
        """f(t) with f(x, t) = f(t) x."""
        return -0.5 * self.beta(t) if self.kind == "vp" else t * 0.0

    def g2(self, t):
        """g(t)^2."""
        if self.kind == "vp":
            return self.beta(t)
        return 2.0 * self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min)

    @property
    def prior_std(self) -> float:
        return 1.0 if self.kind == "vp" else self.sigma_max
