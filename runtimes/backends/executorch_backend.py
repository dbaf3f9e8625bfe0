"""``executorch``: the bundle's ExecuTorch programs (``executorch/<role>*.pte``) run by ExecuTorch's
Python runtime (``executorch.runtime``), with the XNNPACK delegate on the CPU.

A ``.pte`` is a flatbuffer program (operator list, weights, XNNPACK-lowered subgraphs); it carries
no native code (the kernels are the runtime's own), so unlike an AOTInductor package it needs no
trust decision beyond the bundle's sha256 check.

ExecuTorch plans every activation at its upper bound when the program is written, so a
dynamic-batch program takes up to ``max_batch`` rows per call (the manifest entry says how many):
bigger batches run in chunks. A static-batch entry (``static_batches``: size -> file) runs each
chunk on the next size up, padded (targets.run_static). The entry's ``requires.delegates`` names
the runtime backends the program calls; one this runtime lacks (Core ML, Vulkan programs on a
Linux CPU) is refused in one line.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes.backends.base import Backend
from edgegen.runtimes.backends.targets import run_static, target_entry

FORMAT = "executorch"


@contextlib.contextmanager
def native_quiet():
    """Silence what ExecuTorch's C++ side prints straight to the stderr file descriptor (cpuinfo
    probing on first use, thread-pool resets); errors still reach the caller as exceptions."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_executorch_runtime():
    """``executorch.runtime``, quietly: importing it imports torchao, which logs a warning for every
    CUDA kernel library it cannot load on a CPU machine."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("torchao").setLevel(logging.ERROR)
            import executorch.runtime as et_runtime
    except ImportError as e:
        raise EdgegenError(f"ExecuTorch needs the Python package '{e.name}' "
                           "(pip install 'edgegen[executorch]')") from None
    return et_runtime


def refusal(manifest, role: str):
    """Why the exporter refused to write ``role`` as a .pte (recorded in the manifest), else None."""
    return manifest.data.get("export", {}).get(FORMAT, {}).get("refused", {}).get(role)


def _tensor(a: np.ndarray):
    """A torch tensor with the strides ExecuTorch expects. numpy gives an empty array (an empty KV
    cache: a dim of 0) zero strides, torch computes them as if every dim were at least 1, and the
    runtime aborts the whole process (an assert, not an exception) on the numpy ones."""
    import torch
    if a.size == 0:
        return torch.empty(a.shape, dtype=torch.from_numpy(a.reshape(-1)[:0]).dtype)
    return torch.from_numpy(np.ascontiguousarray(a))


class ExecuTorchBackend(Backend):
    name = "executorch"
    format = FORMAT
    requires = ("executorch",)
    extra = "executorch"

    def __init__(self, manifest, role, precision="fp32", threads: int = 0, **opts):
        super().__init__(manifest, role, precision, **opts)
        reason = refusal(manifest, role)
        if reason:
            raise EdgegenError(f"'{role}' has no ExecuTorch program: the export refused it ({reason})")
        entry = target_entry(manifest, role, FORMAT, precision)
        with native_quiet():
            runtime = import_executorch_runtime().Runtime.get()
        missing = [d for d in entry.get("requires", {}).get("delegates", [])
                   if not runtime.backend_registry.is_available(d)]
        if missing:
            raise EdgegenError(f"this {precision} ExecuTorch program of '{role}' needs the {', '.join(missing)} "
                               f"delegate, which this ExecuTorch runtime does not have (it has: "
                               f"{', '.join(runtime.backend_registry.registered_backend_names)})")
        if threads:
            from executorch.extension.pybindings import portable_lib
            with native_quiet():  # the first thread-pool use probes the CPU, loudly
                if portable_lib._threadpool_get_thread_count() != int(threads):
                    portable_lib._unsafe_reset_threadpool(int(threads))
        root = manifest.root
        self.static = {int(b): self._load(runtime, root / rel) for b, rel in entry.get("static_batches", {}).items()}
        self.method = None if self.static else self._load(runtime, manifest.file(role, FORMAT, precision))
        self.max_batch = int(entry.get("max_batch", 0)) or None

    def _load(self, runtime, path):
        try:
            with native_quiet():
                method = runtime.load_program(str(path)).load_method("forward")
        except Exception as e:  # the pybindings raise RuntimeError/ValueError: keep the first line
            raise EdgegenError(f"cannot load the ExecuTorch program {path.name}: "
                               f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from e
        if method is None:
            raise EdgegenError(f"the ExecuTorch program {path.name} has no 'forward' method")
        return method

    def _call(self, method, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outs = method.execute([_tensor(arrays[t.name]) for t in self.spec.inputs])
        except Exception as e:
            raise EdgegenError(f"{self.role_name}: ExecuTorch failed to run: {str(e).strip().splitlines()[0]}") from e
        # outputs live in the method's planned memory, which the next call overwrites: copy them out
        return {t.name: np.array(o.numpy(), copy=True) for t, o in zip(self.spec.outputs, outs)}

    def run(self, inputs):
        arrays = self.prepare(inputs)
        if self.static:
            return run_static(sorted(self.static), arrays, lambda b, chunk: self._call(self.static[b], chunk))
        n = next(iter(arrays.values())).shape[0]
        step = self.max_batch or n
        if n <= step:
            return self._call(self.method, arrays)
        parts = [self._call(self.method, {k: a[s:s + step] for k, a in arrays.items()}) for s in range(0, n, step)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
