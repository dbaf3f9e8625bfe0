"""Calibration data from real sampling trajectories.

The fp32 network is driven by the family's own sampler plan through the plan interpreter's
``on_eval`` hook (no per-family code), and every network input (x_t, t, label) is kept. The
kept set is stratified: ``calls`` rows spread evenly over the plan's steps (so every noise
level is covered, from pure noise to the clean sample) and, within a step, over trajectories
whose labels cycle through every class. With classifier-free guidance, every other row gets
the null label, as the guided call sees it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgegen.errors import EdgegenError

RECORD_SEED = 20_251


@dataclass
class CalibrationSet:
    inputs: dict[str, np.ndarray]  # role input name -> (calls, ...) array
    step: np.ndarray  # (calls,) int64 plan step index of each row (-1: not from a trajectory)
    provenance: dict

    def __len__(self) -> int:
        return len(self.step)

    def batches(self, size: int):
        for s in range(0, len(self), size):
            yield {k: v[s:s + size] for k, v in self.inputs.items()}


def select_rows(calls: int, steps: int, n_traj: int) -> list[tuple[int, int]]:
    """(step, trajectory) pairs: steps evenly spread, trajectories (and so labels) cycled."""
    return [(r * steps // calls, r % n_traj) for r in range(calls)]


def record(pipe, calls: int, seed: int = RECORD_SEED, sampler=None, steps=None, progress: bool = False,
           batch_size: int = 64) -> CalibrationSet:
    """Run the fp32 ``pipe`` (a runtimes.api.Pipeline) through its plan and keep ``calls`` network inputs."""
    if calls <= 0:
        raise EdgegenError(f"the calibration set is empty (--calls {calls}): give at least 1 call")
    plan = pipe.plan(sampler, steps)
    n_steps = len(plan.steps)
    k = max(pipe.manifest.num_classes, 1)
    n_traj = max(k, math.ceil(calls / n_steps))
    n_traj = k * math.ceil(n_traj / k)  # whole label cycles
    rows = select_rows(calls, n_steps, n_traj)
    wanted: dict[int, list[int]] = {}
    for i, (s, j) in enumerate(rows):
        wanted.setdefault(s, []).append(i)
    spec = pipe.backend.spec
    meta = spec.meta or {}
    t_name, y_name = meta.get("time_input"), meta.get("label_input")
    x_name = next(t.name for t in spec.inputs if t.name not in (t_name, y_name))
    kept: dict[str, list] = {x_name: [None] * calls}
    if t_name:
        kept[t_name] = [None] * calls
    if y_name:
        kept[y_name] = [None] * calls
    pos = {"offset": 0, "batch": 0}  # global index of the current batch's first trajectory

    def on_eval(i, x, t, y):
        if i == 0:  # the interpreter runs batch after batch, each from step 0
            pos["offset"] += pos["batch"]
            pos["batch"] = x.shape[0]
        for r in wanted.get(i, ()):
            j = rows[r][1] - pos["offset"]
            if 0 <= j < x.shape[0]:
                kept[x_name][r] = x[j].copy()
                if t_name:
                    kept[t_name][r] = np.float32(t[j])
                if y_name:
                    kept[y_name][r] = np.int64(y[j])

    pipe.sample(n_traj, seed=seed, labels=pipe.labels(n_traj), sampler=plan.sampler,
                steps=plan.params.get("steps"), batch_size=batch_size, on_eval=on_eval, progress=progress)
    inputs = {name: np.stack(v) for name, v in kept.items()}
    w = pipe.sampling.get("defaults", {}).get("guidance", 1.0)
    null = pipe.manifest.null_label
    if y_name and w != 1.0 and null is not None:
        inputs[y_name][1::2] = null  # the unconditional half of a guided call
    step = np.array([s for s, _ in rows], dtype=np.int64)
    prov = {"method": "trajectory", "plan": plan.key, "plan_steps": n_steps, "seed": int(seed),
            "trajectories": n_traj, "calls": calls, "steps_covered": int(len(set(step.tolist()))),
            "labels_covered": sorted({int(v) for v in inputs[y_name]}) if y_name else [],
            "recorded_with": f"{pipe.backend.name}/fp32", "guidance": w,
            "t_range": [float(inputs[t_name].min()), float(inputs[t_name].max())] if t_name else None}
    return CalibrationSet(inputs, step, prov)


def naive(spec, calls: int, num_classes: int, t_value=None, seed: int = RECORD_SEED) -> CalibrationSet:
    """The naive baseline: Gaussian samples at one timestep (the first one the sampler sees)."""
    if calls <= 0:
        raise EdgegenError(f"the calibration set is empty (--calls {calls}): give at least 1 call")
    rng = np.random.default_rng(seed)
    meta = spec.meta or {}
    t_name, y_name = meta.get("time_input"), meta.get("label_input")
    inputs = {}
    for t in spec.inputs:
        shape = t.concrete(calls)
        if t.name == t_name:
            inputs[t.name] = np.full(shape, t_value if t_value is not None else 0.0, dtype=np.float32)
        elif t.name == y_name:
            inputs[t.name] = (np.arange(calls) % max(num_classes, 1)).astype(np.int64)
        else:
            inputs[t.name] = rng.standard_normal(shape).astype(np.float32)
    prov = {"method": "naive", "description": f"N(0, 1) inputs at the single timestep t = {t_value}",
            "calls": calls, "seed": int(seed)}
    return CalibrationSet(inputs, np.full(calls, -1, dtype=np.int64), prov)
