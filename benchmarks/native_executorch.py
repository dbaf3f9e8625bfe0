"""The native library's ExecuTorch backend (issue 17) on the small DDPM: parity with Python's
ExecuTorch runtime, and ms per sample against Python ExecuTorch and the library's OpenVINO backend.

Needs a bundle with the .pte and the IR of the same run, and a libedgegen built with ExecuTorch
(EDGEGEN_WITH_EXECUTORCH; $EDGEGEN_NATIVE_LIB points at it when it is not build/native):

    OMP_NUM_THREADS=1 .venv/bin/edgegen export runs/ddpm-small --format onnx,openvino,executorch \\
        --executorch-delegates none --out bundles/ddpm-small-et
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/native_executorch.py bundles/ddpm-small-et \\
        --out benchmarks/native_executorch.md

Parity: DDIM-50, 8 samples, one seed, batch 8: native ExecuTorch vs Python ExecuTorch (max abs).
Speed: DDIM-50 at batch 1 (n=1) and batch 8 (n=8), one thread per runtime, one warm-up call then
the best of --repeat calls, ms per sample. Writes a Markdown report with the machine (CPU model,
cores, load average before and after).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# benchmarks/executorch.py would shadow the executorch package when this file runs as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

RUNTIMES = {  # label -> (Pipeline backend, backend options)
    "native ExecuTorch": ("native", {"engine": "executorch"}),
    "Python ExecuTorch": ("executorch", {}),
    "native OpenVINO": ("native", {"engine": "openvino"}),
}


def cpu_seconds() -> float:
    """CPU time of this process, every thread (user + system): on a loaded machine a one-thread
    run's CPU time is close to its time alone, where its wall time is not."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    from edgegen.runtimes.api import Pipeline, open_manifest
    from edgegen.runtimes.backends.native_backend import library_path
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the Markdown report here (else print it)")
    args = ap.parse_args()
    m = open_manifest(args.bundle)
    plan = dict(sampler="ddim", steps=50)
    load_before = load()
    pipes = {name: Pipeline(m, b, threads=1, **o) for name, (b, o) in RUNTIMES.items()}

    ref = pipes["Python ExecuTorch"].sample(8, seed=args.seed, batch_size=8, **plan)
    got = pipes["native ExecuTorch"].sample(8, seed=args.seed, batch_size=8, **plan)
    ov = pipes["native OpenVINO"].sample(8, seed=args.seed, batch_size=8, **plan)
    diff, diff_ov = float(np.max(np.abs(got - ref))), float(np.max(np.abs(ov - ref)))
    print(f"max abs native ExecuTorch - Python ExecuTorch: {diff:.3g}; native OpenVINO - Python ExecuTorch: {diff_ov:.3g}",
          flush=True)

    ms: dict = {}
    cpu_ms: dict = {}
    for batch in (1, 8):
        for name, pipe in pipes.items():
            pipe.sample(batch, seed=args.seed, batch_size=batch, **plan)  # warm-up
            best, best_cpu = float("inf"), float("inf")
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), cpu_seconds()
                pipe.sample(batch, seed=args.seed, batch_size=batch, **plan)
                best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, cpu_seconds() - c0)
            ms[name, batch] = 1000 * best / batch
            cpu_ms[name, batch] = 1000 * best_cpu / batch
            print(f"batch {batch}  {name:18s} {ms[name, batch]:8.1f} ms/sample wall, {cpu_ms[name, batch]:8.1f} CPU",
                  flush=True)

    import importlib.metadata as md

    from edgegen.profiling.cpu_features import machine_features
    cpu = machine_features()
    versions = ", ".join(f"{p} {md.version(p)}" for p in ("executorch", "openvino", "torch"))
    lines = [
        "# Native ExecuTorch backend on the small DDPM",
        "",
        f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')} on {cpu['model']} "
        f"({cpu['summary']}), {os.cpu_count()} cores, load average (1, 5, 15 min) {load_before} before and {load()} after "
        "(a shared machine: other engineers' jobs and a training run were running; compare the ratios "
        f"within this run, not absolute times). {versions}; libedgegen {library_path()}.",
        "",
        f"Made by `benchmarks/native_executorch.py {args.bundle}` (its docstring has the export command). "
        "DDIM-50, one thread per runtime (native: `num_threads` 1, i.e. ExecuTorch's thread pool off / "
        "OpenVINO INFERENCE_NUM_THREADS 1; Python ExecuTorch: `threads=1`), one warm-up call, "
        f"best of {args.repeat}.",
        "",
        f"Parity, 8 samples, seed {args.seed}, batch 8: max abs difference native ExecuTorch vs Python "
        f"ExecuTorch **{diff:.3g}** (bound 1e-4); native OpenVINO vs Python ExecuTorch {diff_ov:.3g}.",
        "",
        "Wall time is inflated by the machine's load; CPU time (the process's user + system seconds, "
        "every thread) is the steadier figure for one-thread runs.",
        "",
        "| runtime | batch 1 wall | batch 1 CPU | batch 8 wall | batch 8 CPU |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {ms[name, 1]:.1f} | {cpu_ms[name, 1]:.1f} | {ms[name, 8]:.1f} | {cpu_ms[name, 8]:.1f} |"
              for name in RUNTIMES]
    lines.append("")
    lines.append("ms per sample, DDIM-50.")
    text = "\n".join(lines) + "\n"
    if args.out:
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    print(text)


if __name__ == "__main__":
    main()
