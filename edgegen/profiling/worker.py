"""Profile one configuration in a fresh process: ``python -m edgegen.profiling.worker JOB.json OUT.json``.

A job is {"kind": "edgegen" | "torch-eager" | "diffusers-ort", "bundle", "backend", "precision",
"batch", "sampler", "steps", "repeat", "seed"}. The worker measures, in this order:
load (import + create/compile), the first network call, one untimed warm-up run, then
``repeat`` timed runs of the whole sampler at ``batch``; and the process's peak resident
memory. Each timed run records wall time, time inside network calls, and a per-step
timeline (start of each step relative to the run start, and its network time).
"""
from __future__ import annotations

import base64
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from edgegen.paths import atomic_write_text


# backends that take a ``threads`` option; torch (and numpy) follow OMP_NUM_THREADS, which the
# runner sets for this process
THREADED = ("onnxruntime", "openvino", "native", "executorch")


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    /proc/self/status VmHWM is this address space's own high-water mark; getrusage's
    ru_maxrss is not used on Linux because it keeps the parent's peak across fork+exec.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


class _Recorder:
    """Collects one run's per-step timeline from the pipeline's step callback (every generator
    and executor reports steps through it)."""

    def __init__(self, eval_seconds):
        self.eval_seconds = eval_seconds  # () -> network seconds so far
        self.t0 = 0.0
        self.starts: list[float] = []
        self.net_at_start: list[float] = []

    def begin(self) -> None:
        self.t0 = time.perf_counter()
        self.starts, self.net_at_start = [0.0], [0.0]

    def callback(self, done: int, total: int) -> None:
        if done < total:  # the next step starts now
            self.starts.append(time.perf_counter() - self.t0)
            self.net_at_start.append(self.eval_seconds())

    def timeline(self, wall: float, net_total: float) -> list[dict]:
        ends = self.starts[1:] + [wall]
        nets = self.net_at_start[1:] + [net_total]
        return [{"start": s, "seconds": e - s, "net_seconds": n1 - n0}
                for s, e, n0, n1 in zip(self.starts, ends, self.net_at_start, nets)]


def _edgegen_runner(job: dict):
    """(load, first_call, run) for an edgegen backend driven through the Pipeline."""
    from edgegen.runtimes.api import Pipeline, open_manifest
    manifest = open_manifest(job["bundle"])
    opts = {"threads": job["threads"]} if job.get("threads") and job["backend"] in THREADED else {}
    if job.get("mode", "latency") != "latency":  # throughput mode (runner.MODE_BACKENDS only)
        opts.update(mode=job["mode"], streams=job.get("streams", 0))
    pipe = Pipeline(manifest, job["backend"], job["precision"], **opts)
    spec = pipe.backend.spec
    b = job["batch"]
    options = {"sampler": job["sampler"], "steps": job["steps"]}
    if pipe.generator.has_plans:
        options["guidance"] = 1.0  # one network call per step: no classifier-free guidance doubling
    # A single network call warms up a backend the Python interpreter drives; other executors
    # (native, CUDA graph) and token loops warm up with a whole first run.
    single = pipe.generator.has_plans and pipe.backend.plan_executor() is None

    def first_call():
        if not single:
            pipe.sample(b, seed=job["seed"], batch_size=b, **options)
            return
        inputs = {}
        for t in spec.inputs:
            shape = t.concrete(b)
            inputs[t.name] = (np.zeros(shape, dtype=np.float32) if t.dtype == "float32"
                              else np.zeros(shape, dtype=np.int64))
        pipe.backend.run(inputs)

    rec = _Recorder(lambda: pipe.eval_seconds)
    state = {"backend": pipe.backend}  # asked after the runs what precision it ran (cpu_features.py)

    def run():
        pipe.reset_counters()
        rec.begin()
        state["samples"] = pipe.sample(b, seed=job["seed"], batch_size=b, callback=rec.callback, **options)
        wall = time.perf_counter() - rec.t0
        return wall, pipe.eval_seconds, pipe.eval_calls, rec.timeline(wall, pipe.eval_seconds)

    return state, first_call, run


def _baseline_runner(job: dict):
    from edgegen.profiling import baselines
    return baselines.make(job)


def profile(job: dict) -> dict:
    if job["kind"] == "peak":  # the machine's peak, measured under the same thread settings
        from edgegen.profiling import peak
        return {"job": job, "gemm": peak.gemm_peak(), "bandwidth": peak.copy_bandwidth()}
    rss_start = _rss_mb()
    t0 = time.perf_counter()
    state, first_call, run = (_edgegen_runner if job["kind"] == "edgegen" else _baseline_runner)(job)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first_call()
    first_call_s = time.perf_counter() - t0
    first_run_s = run()[0]
    walls, nets, steps, calls, timelines = [], [], [], 0, []
    for _ in range(job["repeat"]):
        wall, net, calls, tl = run()
        walls.append(wall)
        nets.append(net)
        steps += [s["seconds"] for s in tl or []]
        timelines.append(tl)
    timeline = timelines[int(np.argsort(walls)[len(walls) // 2])]  # the run with the median wall time
    from edgegen.profiling.cpu_features import backend_precision
    try:
        ran = (backend_precision(state["backend"]) if "backend" in state
               else {"requested": job["precision"], "ran": job["precision"], "detail": "baseline loop"})
    except Exception as e:  # the figures stand without it
        ran = {"requested": job["precision"], "ran": None, "detail": f"could not ask the runtime: {e}"}
    return {"job": job, "load_seconds": load_s, "first_call_seconds": first_call_s,
            "first_run_seconds": first_run_s, "run_seconds": walls, "net_seconds": nets, "step_seconds": steps,
            "calls_per_run": calls, "timeline": timeline, "rss_start_mb": rss_start, "peak_rss_mb": _rss_mb(),
            "samples": encode(state["samples"]), "precision_ran": ran}


def encode(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "f32_base64": base64.b64encode(a.tobytes()).decode()}


def decode(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["f32_base64"]), dtype=np.float32).reshape(d["shape"])


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(args[0]).read_text())
    try:
        result = profile(job)
    except Exception as e:  # reported to the runner as this configuration's failure
        result = {"job": job, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
    atomic_write_text(Path(args[1]), json.dumps(result))  # the runner never reads half a result
    return 0


if __name__ == "__main__":
    sys.exit(main())
