"""The machine's measured peak, for the roofline: an fp32 GEMM microbenchmark and a
memory-copy bandwidth measurement, both run in the profiling session itself."""
from __future__ import annotations

import os
import platform
import time

import numpy as np


def gemm_peak(n: int = 1024, min_seconds: float = 1.0) -> dict:
    """Best-of fp32 GEMM throughput (numpy's BLAS, all its threads) in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults
    best, runs, start = float("inf"), 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "runs": runs, "best_seconds": best}


def copy_bandwidth(megabytes: int = 256, min_seconds: float = 0.5) -> dict:
    """Best-of memory bandwidth of a large array copy (read + write bytes) in GB/s."""
    src = np.ones(megabytes * (1 << 20) // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best, runs, start = float("inf"), 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return {"gbytes_per_s": 2 * src.nbytes / best / 1e9, "megabytes": megabytes, "runs": runs}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the numbers were measured on: CPU, cores, OS, library versions."""
    import importlib.metadata as md
    versions = {}
    for pkg in ("edgegen", "numpy", "torch", "onnxruntime", "openvino", "onnx", "diffusers"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    from edgegen.profiling.cpu_features import machine_features
    return {"cpu": cpu_model(), "cpu_features": machine_features(), "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "os": platform.platform(), "python": platform.python_version(), "versions": versions,
            # other load on the machine while it was measured (1, 5, 15 min averages)
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
