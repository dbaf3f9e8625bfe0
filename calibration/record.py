"""Calibration data from real sampling trajectories.

The fp32 network is driven by the family's own sampler plan through the plan interpreter's
``on_eval`` hook (no per-family code), and every network input (x_t, t, label) is kept. The
kept set is stratified: ``calls`` rows spread evenly over the plan's steps (so every noise
level is covered, from pure noise to the clean sample) and, within a step, over trajectories
whose labels cycle through every class. With classifier-free guidance, every other row gets
the null label, as the guided call sees it; which rows alternates its parity every K rows (K
classes), so every class keeps conditional rows (plain odd rows would null every odd class).

Context models (latent text-to-image, docs/notes/latent-stages.md) are prompted: label k's
trajectories use the bundle's stored prompt of class k, and the text encoder's context rows are
kept as the denoiser's ``context_input``. The hook sees the context table's indices y, so the
recorder runs the pipeline's condition stage on the same prompts (the public way to the table
the executor looks rows up in: same prompts, same table) and keeps ``table[y]``; under guidance
every other row gets the null (empty-prompt) context instead.
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


def unconditional_rows(calls: int, k: int) -> np.ndarray:
    """(calls,) bool: the rows that get the null label or context under guidance. Row r follows
    class r mod k; alternating rows leave every class half of its rows conditional and keep both
    halves spread over the steps. With an even k the parity flips every k rows (else the odd
    classes would never be conditional)."""
    r = np.arange(calls)
    return (r + (r // k if k % 2 == 0 else 0)) % 2 == 1


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
    t_name, y_name, c_name = meta.get("time_input"), meta.get("label_input"), meta.get("context_input")
    x_name = next(t.name for t in spec.inputs if t.name not in (t_name, y_name, c_name))
    kept: dict[str, list] = {x_name: [None] * calls}
    for name in (t_name, y_name, c_name):
        if name:
            kept[name] = [None] * calls
    labels = pipe.labels(n_traj)
    table = None
    if c_name:  # [context; null_context], indexed like the executor's (y = -1: the null row)
        cond = pipe.condition.prepare(n_traj, labels)
        if cond.context is None:
            raise EdgegenError(f"role '{pipe.backend.role_name}' takes a text context but the condition stage "
                               "gives none")
        table = np.concatenate([cond.context, cond.null_context])
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
                if c_name:
                    kept[c_name][r] = table[y[j]]
                    traj_label[r] = int(labels[rows[r][1]])

    traj_label = [-1] * calls  # context models: the class whose prompt each kept row followed
    pipe.sample(n_traj, seed=seed, labels=labels, sampler=plan.sampler,
                steps=plan.params.get("steps"), batch_size=batch_size, on_eval=on_eval, progress=progress)
    inputs = {name: np.stack(v) for name, v in kept.items()}
    w = pipe.sampling.get("defaults", {}).get("guidance", 1.0)
    null = pipe.manifest.null_label
    uncond = unconditional_rows(calls, k) if w != 1.0 else np.zeros(calls, dtype=bool)
    if y_name and null is not None:
        inputs[y_name][uncond] = null  # the unconditional half of a guided call
    if c_name:
        inputs[c_name][uncond] = table[-1]  # the empty-prompt context of the guided call's other half
    step = np.array([s for s, _ in rows], dtype=np.int64)
    covered = sorted({int(v) for v in inputs[y_name]}) if y_name else \
        sorted({v for v, u in zip(traj_label, uncond) if v >= 0 and not u}) if c_name else []
    prov = {"method": "trajectory", "plan": plan.key, "plan_steps": n_steps, "seed": int(seed),
            "trajectories": n_traj, "calls": calls, "steps_covered": int(len(set(step.tolist()))),
            "labels_covered": covered, "recorded_with": f"{pipe.backend.name}/fp32", "guidance": w,
            "t_range": [float(inputs[t_name].min()), float(inputs[t_name].max())] if t_name else None}
    if c_name:
        prov.update({"context_input": c_name, "prompts": list(dict.fromkeys(pipe.condition.prompts(n_traj, labels))),
                     "null_context_rows": int(uncond.sum())})
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
