"""The native C++ runtime (libedgegen, runtimes/native/) driven through ctypes.

Unlike the other adapters it runs whole plans itself - that is its point: it is its own plan
executor (executors.py): the Pipeline hands it the plan and it returns the samples plus its own
timing of the network calls. The request's ``callback(done, total)`` is called from inside the
C++ loop after every network step (a ctypes progress callback, ABI 2); returning False cancels
the call (EDGEGEN_ERR_CANCELLED -> ``edgegen.errors.Cancelled``). The library is found at $EDGEGEN_NATIVE_LIB, else at
``build/native/libedgegen.so`` in the source tree (``make native`` builds it).
"""
from __future__ import annotations

import ctypes
import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np

from edgegen.errors import Cancelled, EdgegenError
from edgegen.runtimes.backends.base import Backend

LIB_ENV = "EDGEGEN_NATIVE_LIB"
DEFAULT_LIB = Path(__file__).resolve().parents[2] / "build" / "native" / "libedgegen.so"
ABI_VERSION = 2
OK = 0
CANCELLED = 9  # EDGEGEN_ERR_CANCELLED
# edgegen_progress_fn: int (*)(uint64_t done, uint64_t total, void *user); non-zero cancels
ProgressFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)


class LoadParams(ctypes.Structure):  # mirrors edgegen_load_params (edgegen.h)
    _fields_ = [("backend", ctypes.c_char_p), ("device", ctypes.c_char_p), ("precision", ctypes.c_char_p),
                ("verify_sha256", ctypes.c_int), ("cache_dir", ctypes.c_char_p),
                ("calibration_cache", ctypes.c_char_p), ("max_batch", ctypes.c_int), ("num_threads", ctypes.c_int),
                ("trust_code", ctypes.c_int)]


class SampleParams(ctypes.Structure):  # mirrors edgegen_sample_params
    _fields_ = [("sampler", ctypes.c_char_p), ("steps", ctypes.c_int), ("eta", ctypes.c_double),
                ("plan_json", ctypes.c_char_p), ("n", ctypes.c_uint32), ("seed", ctypes.c_uint64),
                ("labels", ctypes.POINTER(ctypes.c_int64)), ("label", ctypes.c_int64),
                ("guidance", ctypes.c_double), ("batch_size", ctypes.c_uint32),
                ("progress", ProgressFn), ("progress_user", ctypes.c_void_p)]


class Stats(ctypes.Structure):  # mirrors edgegen_stats
    _fields_ = [("total_seconds", ctypes.c_double), ("network_seconds", ctypes.c_double),
                ("network_calls", ctypes.c_uint64)]


STRUCTS = {"edgegen_load_params": LoadParams, "edgegen_sample_params": SampleParams, "edgegen_stats": Stats}
_lib: Optional[ctypes.CDLL] = None


def library_path() -> Path:
    return Path(os.environ.get(LIB_ENV) or DEFAULT_LIB)


def _load() -> ctypes.CDLL:
    """Open libedgegen once, declare the functions used, check the ABI matches these mirrors."""
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    if not path.is_file():
        raise EdgegenError(f"libedgegen is not built (no {path}): run `make native`, or set {LIB_ENV}")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise EdgegenError(f"cannot load {path}: {e}") from None
    lib.edgegen_last_error.restype = ctypes.c_char_p
    lib.edgegen_status_name.restype = ctypes.c_char_p
    lib.edgegen_struct_size.restype = ctypes.c_size_t
    lib.edgegen_struct_size.argtypes = [ctypes.c_char_p]
    lib.edgegen_bundle_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(LoadParams), ctypes.POINTER(ctypes.c_void_p)]
    lib.edgegen_bundle_free.argtypes = [ctypes.c_void_p]
    lib.edgegen_load_params_init.argtypes = [ctypes.POINTER(LoadParams)]
    lib.edgegen_sample_params_init.argtypes = [ctypes.POINTER(SampleParams)]
    lib.edgegen_sample_count.argtypes = [ctypes.c_void_p, ctypes.POINTER(SampleParams), ctypes.POINTER(ctypes.c_size_t)]
    lib.edgegen_sample.argtypes = [ctypes.c_void_p, ctypes.POINTER(SampleParams), ctypes.POINTER(ctypes.c_float),
                                   ctypes.c_size_t, ctypes.POINTER(Stats)]
    lib.edgegen_cancel.argtypes = [ctypes.c_void_p]
    if lib.edgegen_abi_version() != ABI_VERSION:
        raise EdgegenError(f"{path} has ABI version {lib.edgegen_abi_version()}, this binding expects {ABI_VERSION}")
    for name, cls in STRUCTS.items():
        if lib.edgegen_struct_size(name.encode()) != ctypes.sizeof(cls):
            raise EdgegenError(f"{path}: struct {name} does not match the ctypes mirror (rebuild: make native)")
    _lib = lib
    return lib


def _check(status: int) -> None:
    if status != OK:
        lib = _load()
        raise EdgegenError(lib.edgegen_last_error().decode(errors="replace"))


class NativeBackend(Backend):
    name = "native"
    single_calls = False  # whole plans only
    format = "openvino"  # the IR it runs through its OpenVINO backend (TensorRT: the ONNX)

    def __init__(self, manifest, role, precision="fp32", device: str = "CPU", engine: str = "openvino",
                 cache_dir: Optional[str] = None, threads: int = 0, **opts):
        super().__init__(manifest, role, precision, **opts)
        from edgegen.runtimes.stages import generator_class
        if not generator_class(manifest).has_plans:
            raise EdgegenError("backend 'native' runs whole sampler plans; token models run on torch, onnxruntime "
                               "or openvino")
        lib = _load()
        if role != manifest.sampling.get("role"):
            raise EdgegenError(f"the native runtime runs the sampling role '{manifest.sampling.get('role')}', "
                               f"not '{role}'")
        lp = LoadParams()
        lib.edgegen_load_params_init(ctypes.byref(lp))
        self._keep = [s.encode() for s in (engine, device, precision, cache_dir or "")]
        lp.backend, lp.device, lp.precision = self._keep[:3]
        lp.cache_dir = self._keep[3] or None
        lp.verify_sha256 = 0  # open_manifest already checked every sha256 of this bundle
        lp.num_threads = int(threads)  # OpenVINO INFERENCE_NUM_THREADS, like the openvino backend's option
        lp.trust_code = int(bool(opts.get("trust_code")))  # code-bearing formats (SECURITY.md)
        handle = ctypes.c_void_p()
        _check(lib.edgegen_bundle_load(str(manifest.root).encode(), ctypes.byref(lp), ctypes.byref(handle)))
        self._lib, self._handle = lib, handle
        self.network_seconds, self.network_calls = 0.0, 0  # as timed inside the library (executor protocol)

    @classmethod
    def unavailable(cls) -> Optional[str]:
        try:
            _load()
        except EdgegenError as e:
            return str(e)
        return None

    def run(self, inputs):
        raise EdgegenError("the native backend runs whole plans (Pipeline.sample), not single network calls")

    def plan_executor(self):
        return self

    def execute(self, plan, req) -> np.ndarray:
        """The executor protocol: the whole plan in C++, req.callback called after every step."""
        out, stats = self.run_plan(plan.to_json(), req.labels, req.seed, req.batch_size, req.guidance,
                                   req.null_label, req.sample_shape, callback=req.callback)
        self.network_seconds += stats["network_seconds"]
        self.network_calls += stats["network_calls"]
        return out

    def cancel(self) -> None:
        """Stop the run_plan in progress on this backend (callable from another thread)."""
        if getattr(self, "_handle", None):
            _check(self._lib.edgegen_cancel(self._handle))

    def run_plan(self, plan: dict, labels: np.ndarray, seed: int, batch_size: int, guidance: float,
                 null_label: Optional[int], sample_shape, callback=None) -> tuple[np.ndarray, dict]:
        """Run a whole plan (plans.py JSON) natively; returns (samples, timing stats).

        callback(done, total) is called after every network step (across batches); returning
        False cancels (edgegen.errors.Cancelled); an exception it raises stops the run and is
        re-raised here."""
        sp = SampleParams()
        self._lib.edgegen_sample_params_init(ctypes.byref(sp))
        plan_text = json.dumps(plan).encode()
        sp.plan_json = plan_text
        sp.n, sp.seed, sp.batch_size = len(labels), int(seed), int(batch_size)
        sp.guidance = float(guidance) if guidance is not None else math.nan
        y = np.ascontiguousarray(labels, dtype=np.int64)
        if self.manifest.num_classes > 0:  # unconditional models take the library's default (null) labels
            sp.labels = y.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))
        raised: list[BaseException] = []
        if callback is not None:
            def trampoline(done, total, _user):  # never lets an exception cross into C
                try:
                    return 1 if callback(int(done), int(total)) is False else 0
                except BaseException as e:  # noqa: BLE001 - re-raised after the call returns
                    raised.append(e)
                    return 1
            keep_alive = ProgressFn(trampoline)  # referenced until the call returns
            sp.progress = keep_alive
        count = ctypes.c_size_t()
        _check(self._lib.edgegen_sample_count(self._handle, ctypes.byref(sp), ctypes.byref(count)))
        out = np.empty(count.value, dtype=np.float32)
        stats = Stats()
        status = self._lib.edgegen_sample(self._handle, ctypes.byref(sp),
                                          out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size,
                                          ctypes.byref(stats))
        if raised:
            raise raised[0]
        if status == CANCELLED:
            raise Cancelled(self._lib.edgegen_last_error().decode(errors="replace"))
        _check(status)
        shape = (len(labels), *(plan.get("shapes", {}).get(plan["output"], sample_shape)))
        self.last_stats = {"total_seconds": stats.total_seconds, "network_seconds": stats.network_seconds,
                           "network_calls": int(stats.network_calls)}  # as timed inside the library
        return out.reshape(shape), dict(self.last_stats)

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.edgegen_bundle_free(self._handle)
            self._handle = None

    def __del__(self):
        self.close()
