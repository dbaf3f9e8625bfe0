"""The one Python plan interpreter (plans.py defines the format).

It knows nothing about any backend: the network is a callable
``net(x, t, y) -> out`` on numpy arrays (x: (B, ...) f32, t: (B,) f32 or None for a
step with "t": null, y: (B,) i64).
Samples are processed in batches; sample i always gets the noise of global sample
index i (rng.py), so results do not depend on the batch size.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from tqdm import tqdm

from edgegen.runtimes import rng
from edgegen.runtimes.plans import Plan

Net = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# on_eval(step_index, x, t, y) sees every network input before the call (calibration, profiling)
EvalHook = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]


def guided_eval(net: Net, x: np.ndarray, t: np.ndarray, y: np.ndarray, guidance: float,
                null_label: Optional[int]) -> np.ndarray:
    """Classifier-free guidance: e_u + w (e_c - e_u), one batched call on [x; x]."""
    if guidance == 1.0 or null_label is None:
        return net(x, t, y)
    b = x.shape[0]
    out = net(np.concatenate([x, x]), None if t is None else np.concatenate([t, t]),
              np.concatenate([y, np.full_like(y, null_label)]))
    e_c, e_u = out[:b], out[b:]
    return e_u + np.float32(guidance) * (e_c - e_u)


def langevin(x: np.ndarray, score: np.ndarray, z: np.ndarray, snr: float, alpha: float) -> np.ndarray:
    """The reference Langevin corrector step (plans.py): per-sample SNR step size."""
    b = x.shape[0]
    s_norm = np.linalg.norm(score.reshape(b, -1).astype(np.float64), axis=1)
    z_norm = np.linalg.norm(z.reshape(b, -1).astype(np.float64), axis=1)
    step = 2.0 * alpha * (snr * z_norm / np.maximum(s_norm, 1e-30)) ** 2  # (B,) float64
    shape = (b,) + (1,) * (x.ndim - 1)
    return (x + step.astype(np.float32).reshape(shape) * score
            + np.sqrt(2.0 * step).astype(np.float32).reshape(shape) * z)


def apply_op(op: dict, regs: dict[str, np.ndarray], noise: Callable[[str], np.ndarray]) -> None:
    """Run one op; ``noise(register)`` is one fresh draw shaped like that register."""
    kind = op["op"]
    if kind == "affine":
        acc = None
        for name, c in op["terms"]:
            term = np.float32(c) * regs[name]
            acc = term if acc is None else acc + term
        if "noise" in op:
            z = np.float32(op["noise"]) * noise(op["dst"])
            acc = z if acc is None else acc + z
        regs[op["dst"]] = acc
    elif kind == "clip":
        regs[op["dst"]] = np.clip(regs[op["dst"]], np.float32(op["lo"]), np.float32(op["hi"]))
    elif kind == "langevin":
        score = np.float32(op["scale"]) * regs[op["score"]]
        regs[op["dst"]] = langevin(regs[op["dst"]], score, noise(op["dst"]), op["snr"], op["alpha"])
    else:  # validate() rejects these when a plan is loaded
        raise ValueError(f"unknown plan op {kind!r}")


def run_batch(plan: Plan, net: Net, shape: tuple[int, ...], labels: np.ndarray, seed: int,
              first_sample: int = 0, guidance: float = 1.0, null_label: Optional[int] = None,
              on_eval: Optional[EvalHook] = None, bar: Optional[tqdm] = None) -> np.ndarray:
    """Run the whole plan for one batch. shape = (B, *sample shape); labels: (B,) int64."""
    draws = 0
    shapes = plan.shapes or {}

    def noise(register: str) -> np.ndarray:
        nonlocal draws
        reg_shape = (shape[0], *shapes[register]) if register in shapes else shape
        z = rng.gaussian(seed, reg_shape, draw=draws, stream=rng.STREAM_NOISE, first_sample=first_sample)
        draws += 1
        return z

    regs: dict[str, np.ndarray] = {}
    for op in plan.init:
        apply_op(op, regs, noise)
    y = np.ascontiguousarray(labels, dtype=np.int64)
    t_vec = np.empty(shape[0], dtype=np.float32)
    for i, step in enumerate(plan.steps):
        t_in = None if step["t"] is None else t_vec
        if t_in is not None:
            t_vec.fill(step["t"])
        x_in = regs[step["src"]]
        if on_eval is not None:
            on_eval(i, x_in, t_in, y)
        regs[step["dst"]] = guided_eval(net, x_in, t_in, y, guidance, null_label)
        for op in step["ops"]:
            apply_op(op, regs, noise)
        if bar is not None:
            bar.update(1)
    return regs[plan.output]


def run_plan(plan: Plan, net: Net, sample_shape: tuple[int, ...], labels: np.ndarray, seed: int,
             batch_size: int = 64, guidance: float = 1.0, null_label: Optional[int] = None,
             on_eval: Optional[EvalHook] = None, progress: bool = False, desc: str = "sample") -> np.ndarray:
    """Sample len(labels) items of ``sample_shape`` (e.g. (C, H, W)); returns (n, *sample_shape) float32."""
    n = len(labels)
    out = np.empty((n, *sample_shape), dtype=np.float32)
    n_batches = -(-n // batch_size)
    with tqdm(total=n_batches * len(plan.steps), desc=desc, disable=not progress, unit="step",
              dynamic_ncols=True) as bar:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            out[start:stop] = run_batch(plan, net, (stop - start, *sample_shape), labels[start:stop], seed,
                                        first_sample=start, guidance=guidance, null_label=null_label,
                                        on_eval=on_eval, bar=bar)
    return out
