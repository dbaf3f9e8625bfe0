"""Executors run whole plans; backends only run one network call (DESIGN principle 10).

Every executor implements ``execute(plan, request) -> samples`` and counts its network time
(``network_seconds``, ``network_calls``). Four exist:

- ``InterpreterExecutor``: the Python interpreter (interpreter.py) over any backend's ``run``;
- ``GraphPlanRunner`` (backends/cuda_graph.py): the whole plan captured in a CUDA graph;
- the native library (backends/native_backend.py), which runs the plan in C++;
- ``FusedExecutor`` (fused_executor.py): one ONNX graph of the whole plan (export/fused_export.py
  builds it from the plan's ops), run by onnxruntime or OpenVINO with no host loop; its
  ``FusedBackend`` is the backend that names it.

A backend says which executor runs plans over it with ``Backend.plan_executor()`` (None: the
Python interpreter); the pipeline asks once and never probes for methods.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes.interpreter import Callback, EvalHook, PreviewHook, Progress, run_plan
from edgegen.runtimes.plans import Plan


@dataclass
class PlanRequest:
    labels: np.ndarray  # (n,) int64: the network's label input per sample (null label if unconditional)
    seed: int
    batch_size: int
    guidance: float
    null_label: Optional[int]
    sample_shape: tuple
    callback: Optional[Callback] = None  # callback(done, total) -> False cancels
    on_eval: Optional[EvalHook] = None  # sees every network input (calibration); Python executor only
    # Context models (latent-stages.md): label y >= 0 feeds context[y], the null label -1 null_context.
    context: Optional[np.ndarray] = None  # (k, L, D) float32
    null_context: Optional[np.ndarray] = None  # (1, L, D) float32
    inputs: Optional[dict] = None  # plan input registers (plan.inputs), each (n, *register shape)
    preview: Optional[PreviewHook] = None  # preview(done, total, x0) every preview_every steps; Python executor only
    preview_every: int = 1

    def progress(self, total: int) -> Progress:
        return Progress(total, self.callback)


class InterpreterExecutor:
    """The reference: the Python plan interpreter over a backend's single network calls."""

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        spec = backend.spec
        meta = spec.meta or {}
        # Role meta names the time, label and context inputs (any may be absent); the other input is the sample.
        self._t, self._y, self._c = meta.get("time_input"), meta.get("label_input"), meta.get("context_input")
        self._x = next(t.name for t in spec.inputs if t.name not in (self._t, self._y, self._c))
        self._table: Optional[np.ndarray] = None  # [context; null_context] of the running request
        self._out = spec.outputs[0].name
        self.network_seconds = 0.0
        self.network_calls = 0

    def net(self, x: np.ndarray, t: Optional[np.ndarray], y: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        inputs = {self._x: x}
        if self._t is not None:
            if t is None:
                raise EdgegenError(f"the plan calls role '{self.backend.role_name}' without a time, but it needs one")
            inputs[self._t] = t
        if self._y is not None:
            inputs[self._y] = y
        if self._c is not None:
            if self._table is None:
                raise EdgegenError(f"role '{self.backend.role_name}' needs a text context: give a prompt")
            inputs[self._c] = self._table[y]  # y == -1 picks the last row, the null context
        out = self.backend.run(inputs)[self._out]
        self.network_seconds += time.perf_counter() - t0
        self.network_calls += 1
        return out

    def execute(self, plan: Plan, req: PlanRequest) -> np.ndarray:
        self._table = None if req.context is None else np.concatenate([req.context, req.null_context])
        try:
            return run_plan(plan, self.net, req.sample_shape, req.labels, int(req.seed), batch_size=req.batch_size,
                            guidance=req.guidance, null_label=req.null_label, on_eval=req.on_eval,
                            callback=req.callback, inputs=req.inputs, on_preview=req.preview,
                            preview_every=req.preview_every)
        finally:
            self._table = None
