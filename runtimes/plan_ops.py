"""The plan ops (plans.py), written once for array code: numpy here, torch for the graph executor.

``apply_op`` is the reference semantics of every op; an ``ArrayOps`` says how a library does
the few things that differ between array libraries (a float32 scalar, clip, per-sample norms).
The numpy path is the Python interpreter's; cuda_graph.py runs the same function on device
tensors, so the two cannot drift apart. Other languages (C++, JavaScript) implement these
ops from the same specification in plans.py.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


class ArrayOps:
    """numpy: float32 arrays, per-sample norms accumulated in float64."""

    @staticmethod
    def scalar(c: float) -> Any:
        return np.float32(c)

    @staticmethod
    def clip(a, lo: float, hi: float):
        return np.clip(a, np.float32(lo), np.float32(hi))

    @staticmethod
    def row_norms(a):
        """(B,) float64 Euclidean norm of each sample."""
        return np.linalg.norm(a.reshape(a.shape[0], -1).astype(np.float64), axis=1)

    @staticmethod
    def per_sample(v, like):
        """A (B,) float64 vector as float32, shaped to broadcast against ``like`` (B, ...)."""
        return v.astype(np.float32).reshape((like.shape[0],) + (1,) * (like.ndim - 1))

    @staticmethod
    def sqrt(v):
        return np.sqrt(v)

    @staticmethod
    def floor(v, lo: float):
        return np.maximum(v, lo)


NUMPY = ArrayOps()


def langevin(x, score, z, snr: float, alpha: float, xp: ArrayOps = NUMPY):
    """One Langevin corrector step with the per-sample SNR step size (plans.py)."""
    step = 2.0 * alpha * (snr * xp.row_norms(z) / xp.floor(xp.row_norms(score), 1e-30)) ** 2  # (B,) float64
    return x + xp.per_sample(step, x) * score + xp.per_sample(xp.sqrt(2.0 * step), x) * z


def apply_op(op: dict, regs: dict, noise: Callable[[str], Any], xp: ArrayOps = NUMPY) -> None:
    """Run one op; ``noise(register)`` is the next fresh Gaussian draw shaped like that register."""
    kind = op["op"]
    if kind == "affine":
        acc = None
        for name, c in op["terms"]:  # summed left to right in float32
            term = xp.scalar(c) * regs[name]
            acc = term if acc is None else acc + term
        if "noise" in op:
            z = xp.scalar(op["noise"]) * noise(op["dst"])
            acc = z if acc is None else acc + z
        regs[op["dst"]] = acc
    elif kind == "clip":
        regs[op["dst"]] = xp.clip(regs[op["dst"]], op["lo"], op["hi"])
    elif kind == "blend":  # inpainting: M * A + (1 - M) * B
        m = regs[op["mask"]]
        regs[op["dst"]] = m * regs[op["a"]] + (xp.scalar(1.0) - m) * regs[op["b"]]
    elif kind == "langevin":
        score = xp.scalar(op["scale"]) * regs[op["score"]]
        regs[op["dst"]] = langevin(regs[op["dst"]], score, noise(op["dst"]), op["snr"], op["alpha"], xp)
    else:  # plans.validate rejects these when a plan is loaded
        raise ValueError(f"unknown plan op {kind!r}")
