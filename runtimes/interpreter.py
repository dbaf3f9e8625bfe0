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

from edgegen.errors import Cancelled, EdgegenError
from edgegen.runtimes import rng
from edgegen.runtimes.plan_ops import apply_op
from edgegen.runtimes.plans import Plan

Net = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# on_eval(step_index, x, t, y) sees every network input before the call (calibration, profiling)
EvalHook = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]
# callback(done, total) after every network step; returning False cancels the run (Cancelled)
Callback = Callable[[int, int], Optional[bool]]
# on_preview(done, total, x0) after every k-th step (before that step's callback): x0 is the batch's
# x0 prediction, the plan's "preview" register (B, ...); returning False cancels the run (Cancelled)
PreviewHook = Callable[[int, int, np.ndarray], Optional[bool]]
# Pipeline.sample's preview(done, total, images): the same, on the decoded x0 (pipeline.py)
Preview = PreviewHook


class Progress:
    """Counts steps across batches and asks the callback whether to go on."""

    def __init__(self, total: int, callback: Optional[Callback]):
        self.done, self.total, self.callback = 0, total, callback

    def step(self, k: int = 1) -> None:
        self.done += k
        self.report()

    def report(self) -> None:
        if self.callback is not None and self.callback(self.done, self.total) is False:
            raise Cancelled(f"cancelled by the callback after {self.done} of {self.total} steps")


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


def run_batch(plan: Plan, net: Net, shape: tuple[int, ...], labels: np.ndarray, seed: int,
              first_sample: int = 0, guidance: float = 1.0, null_label: Optional[int] = None,
              on_eval: Optional[EvalHook] = None, progress: Optional[Progress] = None,
              inputs: Optional[dict] = None, on_preview: Optional[PreviewHook] = None,
              preview_every: int = 1) -> np.ndarray:
    """Run the whole plan for one batch. shape = (B, *sample shape); labels: (B,) int64;
    ``inputs``: the plan's input registers for this batch (filled before ``init``);
    ``on_preview``: see PreviewHook (needs ``progress``, whose count it shares)."""
    if on_preview is not None:
        check_preview(plan)
        if progress is None:
            raise EdgegenError("a preview needs the run's Progress (its step count)")
    draws = 0
    shapes = plan.shapes or {}

    def noise(register: str) -> np.ndarray:
        nonlocal draws
        reg_shape = (shape[0], *shapes[register]) if register in shapes else shape
        z = rng.gaussian(seed, reg_shape, draw=draws, stream=rng.STREAM_NOISE, first_sample=first_sample)
        draws += 1
        return z

    regs: dict[str, np.ndarray] = {}
    for name in plan.inputs or ():
        if inputs is None or name not in inputs:
            raise EdgegenError(f"the plan needs input register {name!r}")
        regs[name] = np.ascontiguousarray(inputs[name], dtype=np.float32)
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
        due = on_preview is not None and (progress.done + 1) % max(1, preview_every) == 0
        for op in step.get("preview_ops", ()) if due else ():  # x0 for the preview only (plans.py)
            apply_op(op, regs, noise)
        for op in step["ops"]:
            apply_op(op, regs, noise)
        if progress is not None:
            progress.done += 1
            if due:
                if plan.preview not in regs:
                    raise EdgegenError(f"the plan's preview register {plan.preview!r} is not written by its steps")
                if on_preview(progress.done, progress.total, regs[plan.preview]) is False:
                    raise Cancelled(f"cancelled by the preview callback after {progress.done} of {progress.total} steps")
            progress.report()
    return regs[plan.output]


def check_preview(plan: Plan) -> None:
    """A preview shows the register the plan compiler named (plans.py "preview"); none: refused."""
    if not plan.preview:
        raise EdgegenError(f"plan '{plan.key}' names no x0 prediction register: it has no preview "
                           "(DDIM and DDPM plans have one; re-export a bundle stored before previews)")


def run_plan(plan: Plan, net: Net, sample_shape: tuple[int, ...], labels: np.ndarray, seed: int,
             batch_size: int = 64, guidance: float = 1.0, null_label: Optional[int] = None,
             on_eval: Optional[EvalHook] = None, callback: Optional[Callback] = None,
             inputs: Optional[dict] = None, on_preview: Optional[PreviewHook] = None,
             preview_every: int = 1) -> np.ndarray:
    """Sample len(labels) items of ``sample_shape`` (e.g. (C, H, W)); returns (n, *sample_shape) float32.
    ``inputs``: the plan's input registers, each (n, ...) (sliced per batch like the labels)."""
    n = len(labels)
    out_dims = tuple((plan.shapes or {}).get(plan.output, sample_shape))
    out = np.empty((n, *out_dims), dtype=np.float32)
    progress = Progress(-(-n // batch_size) * len(plan.steps), callback)
    if on_preview is not None:
        check_preview(plan)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        out[start:stop] = run_batch(plan, net, (stop - start, *sample_shape), labels[start:stop], seed,
                                    first_sample=start, guidance=guidance, null_label=null_label,
                                    on_eval=on_eval, progress=progress,
                                    inputs=None if inputs is None else {k: v[start:stop] for k, v in inputs.items()},
                                    on_preview=on_preview, preview_every=preview_every)
    return out
