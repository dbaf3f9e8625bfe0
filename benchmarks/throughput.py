"""Throughput mode against latency mode: samples per second at batch 16 on the small DDPM, onnxruntime
and OpenVINO, 1 and 2 threads / streams, all timed interleaved in one run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/throughput.py          # make bench-throughput
    .venv/bin/python benchmarks/throughput.py --render-only             # re-render .md from .json

Modes (runtimes/backends/throughput.py):
- latency: one request per network call on ``threads`` intra-op threads (the default);
- onnxruntime inter-op: latency mode with ``inter_op_threads`` and ``execution_mode="parallel"``;
- throughput: the call's batch split across ``streams`` parallel requests (OpenVINO: AsyncInferQueue
  on a model compiled with PERFORMANCE_HINT=THROUGHPUT, NUM_STREAMS; onnxruntime: one session per
  stream, each on its own host thread, ``threads // streams`` intra-op threads each).
Every configuration samples the same seed and its samples are compared with its backend's latency
mode on one thread (max abs difference; throughput mode must give the same samples).

Bundle: bundles/ddpm-small, read only. One run = ``pipe.sample(16, seed=0, batch_size=16)`` with the
plan below; ``--rounds`` rounds, each running every configuration once in turn, after a warm-up run
each (it compiles). Samples/s = 16 / median run time. Results: benchmarks/throughput.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BATCH = 16
PLAN = {"sampler": "ddim", "steps": 20}
# (name, backend, backend options, threads it may use in all)
CONFIGS = [
    ("onnxruntime latency, 1 thread", "onnxruntime", {"threads": 1}, 1),
    ("onnxruntime throughput, 1 stream", "onnxruntime", {"threads": 1, "mode": "throughput", "streams": 1}, 1),
    ("onnxruntime latency, 2 threads", "onnxruntime", {"threads": 2}, 2),
    ("onnxruntime latency, 2 threads, inter-op 2 parallel", "onnxruntime",
     {"threads": 2, "inter_op_threads": 2, "execution_mode": "parallel"}, 2),
    ("onnxruntime throughput, 2 streams x 1 thread", "onnxruntime", {"threads": 2, "mode": "throughput", "streams": 2}, 2),
    ("openvino latency, 1 thread", "openvino", {"threads": 1}, 1),
    ("openvino throughput, 1 stream", "openvino", {"threads": 1, "mode": "throughput", "streams": 1}, 1),
    ("openvino latency, 2 threads", "openvino", {"threads": 2}, 2),
    ("openvino throughput, 2 streams x 1 thread", "openvino", {"threads": 2, "mode": "throughput", "streams": 2}, 2),
]


def machine() -> dict:
    from edgegen.profiling.cpu_features import machine_features
    f = machine_features()
    return {"cpu": f["model"] or platform.processor(), "flags": f["summary"], "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "load_before": list(os.getloadavg())}


def openvino_settings(pipe) -> dict:
    """What OpenVINO compiled: streams, optimal requests, threads, hint (throughput mode's queue model
    or latency mode's request)."""
    be = pipe.backend
    req = next(iter(be._compiled.values()))
    cm = req.get_compiled_model()
    out = {}
    for key in ("PERFORMANCE_HINT", "NUM_STREAMS", "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "INFERENCE_NUM_THREADS"):
        try:
            out[key] = str(cm.get_property(key))
        except Exception as e:  # not every property exists on every version
            out[key] = f"? ({type(e).__name__})"
    return out


def measure(bundle: Path, rounds: int) -> dict:
    from tqdm import tqdm

    from edgegen.runtimes.api import Pipeline, open_manifest
    m = open_manifest(bundle)
    pipes, settings, firsts = {}, {}, {}
    bar = tqdm(total=len(CONFIGS) * (rounds + 1), desc="throughput", unit="run", dynamic_ncols=True)
    for name, backend, opts, _ in CONFIGS:
        pipe = Pipeline(m, backend, **opts)
        t0 = time.perf_counter()
        firsts[name] = pipe.sample(BATCH, seed=0, batch_size=BATCH, **PLAN)  # warm-up: compiles
        settings[name] = {"load_and_first_run_s": time.perf_counter() - t0}
        if backend == "openvino":
            settings[name]["openvino"] = openvino_settings(pipe)
        pipes[name] = pipe
        bar.update(1)
    walls: dict = {name: [] for name in pipes}
    loads = []
    for _ in range(rounds):
        for name, pipe in pipes.items():
            t0 = time.perf_counter()
            pipe.sample(BATCH, seed=0, batch_size=BATCH, **PLAN)
            walls[name].append(time.perf_counter() - t0)
            bar.update(1)
        loads.append(os.getloadavg()[0])
    bar.close()
    rows = []
    for name, backend, opts, threads in CONFIGS:
        ref = firsts[f"{backend} latency, 1 thread"]  # the same backend's latency mode on one thread
        w = np.array(walls[name])
        rows.append({"name": name, "backend": backend, "options": opts, "threads_in_all": threads,
                     "median_run_s": float(np.median(w)), "min_run_s": float(w.min()), "runs": len(w),
                     "samples_per_s": BATCH / float(np.median(w)),
                     "max_abs_vs_same_backend_latency_1_thread": float(np.abs(firsts[name] - ref).max()),
                     "bit_equal": bool(np.array_equal(firsts[name], ref)), **settings[name]})
    return {"rows": rows, "load_samples": loads}


def render(data: dict) -> str:
    m = data["machine"]
    rows = {r["name"]: r for r in data["rows"]}
    base = {b: rows[f"{b} latency, 1 thread"]["samples_per_s"] for b in ("onnxruntime", "openvino")}
    same = {(r["backend"], r["threads_in_all"]): rows[f"{r['backend']} latency, {r['threads_in_all']} thread"
                                                         + ("s" if r["threads_in_all"] > 1 else "")]["samples_per_s"]
            for r in data["rows"]}
    loads = data.get("load_samples") or [0.0]
    lines = ["# Throughput mode: small DDPM, batch 16", "",
             "Produced by `make bench-throughput` (`benchmarks/throughput.py`; raw figures in `benchmarks/throughput.json`).",
             f"Machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), {m['flags']}. "
             f"1-minute load average {m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} after, "
             f"{min(loads):.1f}-{max(loads):.1f} during the rounds: the machine is shared with other jobs, so only "
             "the ratios inside this run mean anything, and on 2 cores that others also use a second thread or "
             "stream competes with them.",
             f"Work: `sample(16, seed=0, batch_size=16, sampler={PLAN['sampler']}, steps={PLAN['steps']})` on "
             f"{data['bundle']}; {data['rounds']} interleaved rounds after a warm-up run each; samples/s = 16 / median.",
             "", "| configuration | samples/s | vs latency 1 thread | vs latency, same threads | max abs vs its backend's latency 1 thread |",
             "|---|---:|---:|---:|---:|"]
    for r in data["rows"]:
        eq = "0 (bit-equal)" if r["bit_equal"] else f"{r['max_abs_vs_same_backend_latency_1_thread']:.1e}"
        lines.append(f"| {r['name']} | {r['samples_per_s']:.2f} | {r['samples_per_s'] / base[r['backend']]:.2f}x | "
                     f"{r['samples_per_s'] / same[(r['backend'], r['threads_in_all'])]:.2f}x | {eq} |")
    ov = [(r["name"], r["openvino"]) for r in data["rows"] if "openvino" in r]
    if ov:
        lines += ["", "What OpenVINO compiled (asked of the compiled model):", ""]
        lines += [f"- {n}: " + ", ".join(f"{k} {v}" for k, v in s.items()) for n, s in ov]
    best = max(data["rows"], key=lambda r: r["samples_per_s"])
    lines += ["", f"Best on this machine in this run: **{best['name']}**, {best['samples_per_s']:.2f} samples/s "
              f"({best['samples_per_s'] / base[best['backend']]:.2f}x its backend's latency mode on 1 thread)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=Path("bundles/ddpm-small"))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=HERE / "throughput")
    p.add_argument("--render-only", action="store_true")
    a = p.parse_args(argv)
    if a.rounds < 1:
        p.error("--rounds must be >= 1")
    out_json, out_md = a.out.with_suffix(".json"), a.out.with_suffix(".md")
    if a.render_only:
        data = json.loads(out_json.read_text())
    else:
        mach = machine()
        started = time.time()
        res = measure(a.bundle, a.rounds)
        mach["load_after"] = list(os.getloadavg())
        data = {"bundle": str(a.bundle), "batch": BATCH, "plan": PLAN, "rounds": a.rounds, "machine": mach,
                "seconds": time.time() - started, **res}
        tmp = out_json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(out_json)
    tmp = out_md.with_suffix(".md.tmp")
    tmp.write_text(render(data))
    tmp.replace(out_md)
    print(out_md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
