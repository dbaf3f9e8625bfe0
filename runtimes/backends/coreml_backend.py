"""Core ML: the bundle's ``.mlpackage`` files, predicted through coremltools (macOS only).

One package per static batch size (the recipe's list); a batch of another size is padded up
to the next package's size (targets.run_static). Compute units default to the manifest's
(ALL: CPU, GPU and the Neural Engine).
"""
from __future__ import annotations

import contextlib
import io
import logging
import platform
from typing import Optional

import numpy as np
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.backends.targets import run_static, target_entry

from edgegen.errors import EdgegenError

def import_coremltools():
    """coremltools, quietly (on Linux it logs that its macOS-only prediction library is absent)."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            logging.getLogger("coremltools").setLevel(logging.ERROR)
            import coremltools as ct
    except ImportError:
        raise EdgegenError("Core ML needs coremltools (pip install 'edgegen[coreml]')") from None
    return ct


# Core ML takes int32 where the manifest says int64 (it has no int64 features)
FEED_DTYPES = {"int64": np.int32}


class CoreMLBackend(Backend):
    name = "coreml"
    requires = ("coremltools",)
    extra = "coreml"
    format = "coreml"

    def __init__(self, manifest, role, precision="fp16", compute_units: Optional[str] = None, **opts):
        super().__init__(manifest, role, precision, **opts)
        ct = import_coremltools()
        entry = target_entry(manifest, role, "coreml", precision)
        units = (compute_units or entry.get("compute_units", "ALL")).upper()
        if not hasattr(ct.ComputeUnit, units):
            raise EdgegenError(f"unknown Core ML compute units '{units}' (choose ALL, CPU_ONLY, CPU_AND_GPU, "
                               "CPU_AND_NE)")
        self.compute_units = getattr(ct.ComputeUnit, units)
        self.packages = {int(b): manifest.root / rel for b, rel in entry["static_batches"].items()}
        self._models: dict[int, object] = {}
        self._ct = ct

    @classmethod
    def unavailable(cls) -> Optional[str]:
        if platform.system() != "Darwin":
            return f"Core ML prediction needs macOS (this machine runs {platform.system()}); " \
                   "the packages are validated structurally here"
        return super().unavailable()

    def _model(self, batch: int):
        if batch not in self._models:
            self._models[batch] = self._ct.models.MLModel(str(self.packages[batch]),
                                                          compute_units=self.compute_units)
        return self._models[batch]

    def compute_plan(self, batch: int) -> dict:
        """op type -> preferred compute device, from Core ML itself (MLComputePlan, macOS 14.4+)."""
        from coremltools.models.compute_plan import MLComputePlan
        compiled = self._model(batch).get_compiled_model_path()
        plan = MLComputePlan.load_from_path(compiled, compute_units=self.compute_units)
        program = plan.model_structure.program
        out: dict = {}
        for fn in program.functions.values():
            for op in fn.block.operations:
                usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
                device = type(usage.preferred_compute_device).__name__ if usage else "const"
                out.setdefault(op.operator_name, {}).setdefault(device, 0)
                out[op.operator_name][device] += 1
        return out

    def run(self, inputs):
        prepared = self.prepare(inputs)
        arrays = {t.name: prepared[t.name].astype(FEED_DTYPES.get(t.dtype, prepared[t.name].dtype), copy=False)
                  for t in self.spec.inputs}
        names = [t.name for t in self.spec.outputs]

        def call(batch: int, feed: dict) -> dict:
            res = self._model(batch).predict(feed)
            return {n: np.asarray(res[n], dtype=np.float32) for n in names}

        return run_static(sorted(self.packages), arrays, call)
