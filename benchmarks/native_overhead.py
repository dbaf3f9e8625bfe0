"""Host overhead of the native runtime: how much of a sampling call is not the network.

For the small DDPM bundle with DDIM-50 at batch 1 and 16, in one process and one run:
  native       libedgegen (C++ plan interpreter + OpenVINO), timed inside the library
  openvino     the Python plan interpreter + the Python OpenVINO backend
  torch eager  the Python plan interpreter + the PyTorch module (eager)
Each row: median over --repeat calls (after one warm-up call that compiles the static
batch) of the total time, the time inside network calls, and host overhead =
(total - network) / total. The goal for native is < 2%.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/native_overhead.py --bundle bundles/ddpm-small
Writes benchmarks/native_overhead.md (and prints it). Needs `make native`.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = (("native", "native"), ("openvino", "openvino (Python)"), ("torch", "torch eager (Python)"))


def measure(pipe, batch: int, repeat: int) -> dict:
    """Median total / network seconds of `repeat` DDIM-50 calls of one batch."""
    kw = dict(n=batch, seed=0, sampler="ddim", steps=50, batch_size=batch, labels=3)
    pipe.sample(**kw)  # warm-up: compiles the static-batch model
    totals, nets, calls, lib_hosts = [], [], 0, []
    for _ in range(repeat):
        pipe.eval_seconds, pipe.eval_calls = 0.0, 0
        t0 = time.perf_counter()
        pipe.sample(**kw)
        totals.append(time.perf_counter() - t0)
        nets.append(pipe.eval_seconds)
        calls = pipe.eval_calls
        lib = getattr(pipe.backend, "last_stats", None)  # native: its own total, without ctypes and Python
        if lib:
            lib_hosts.append((lib["total_seconds"] - lib["network_seconds"]) / lib["total_seconds"])
    hosts = [t - n for t, n in zip(totals, nets)]
    return {"total": statistics.median(totals), "network": statistics.median(nets),
            "host": statistics.median(hosts), "host_frac": statistics.median(h / t for h, t in zip(hosts, totals)),
            "calls": calls, "lib_host_frac": statistics.median(lib_hosts) if lib_hosts else None}


def machine() -> str:
    import openvino
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}; "
            f"OpenVINO {openvino.__version__}, torch {torch.__version__} ({torch.get_num_threads()} thread), "
            f"Python {platform.python_version()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(ROOT / "bundles" / "ddpm-small"))
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "native_overhead.md"))
    args = ap.parse_args(argv)

    import torch
    from edgegen.paths import atomic_write_text
    from edgegen.runtimes.api import Pipeline, open_manifest
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    manifest = open_manifest(args.bundle)
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for name, label in BACKENDS:
        pipe = Pipeline(manifest, name)
        for b in batches:
            r = measure(pipe, b, args.repeat)
            rows.append((label, b, r))
            print(f"{label:22s} batch {b:3d}: total {1000 * r['total']:9.2f} ms  network {1000 * r['network']:9.2f} ms"
                  f"  host {100 * r['host_frac']:6.2f}%", flush=True)
        pipe.backend.close()

    lines = ["# Native runtime: host overhead", "",
             f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} with "
             f"`OMP_NUM_THREADS=1 .venv/bin/python benchmarks/native_overhead.py --bundle {args.bundle}`.", "",
             f"Bundle: `{Path(args.bundle).name}` ({manifest.family}, samples {list(manifest.sample_shape)}), "
             f"DDIM-50, label 3, guidance 1, one batch per call; medians of {args.repeat} calls after one warm-up.",
             "", f"Machine: {machine()}. The machine was shared with other jobs while this ran: medians, "
             "not means; absolute times are noisy, the overhead fractions less so.", "",
             "| runtime | batch | total ms | network ms | host ms | host overhead | inside libedgegen | network calls |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, b, r in rows:
        lib = f"{100 * r['lib_host_frac']:.3f}%" if r["lib_host_frac"] is not None else "-"
        lines.append(f"| {label} | {b} | {1000 * r['total']:.2f} | {1000 * r['network']:.2f} | "
                     f"{1000 * r['host']:.2f} | {100 * r['host_frac']:.2f}% | {lib} | {r['calls']} |")
    lines += ["", "Network time: inside the backend call (inputs in, inference, outputs out). For native it is "
              "measured by libedgegen itself (edgegen_stats); total for native is the Python call around "
              "edgegen_sample, so it includes the ctypes call and the plan JSON hand-over; 'inside libedgegen' is "
              "the host share of edgegen_sample's own total (what a C or C++ app embedding the library pays). "
              "Goal: native host overhead < 2% of the total.", ""]
    text = "\n".join(lines)
    atomic_write_text(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
