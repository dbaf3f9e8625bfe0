"""``edgegen profile``: every (backend, precision, batch) and the baselines, each measured in a
fresh subprocess (worker.py), plus FLOPs per call and the machine's peak for the roofline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from edgegen.errors import EdgegenError
from edgegen.paths import atomic_write_text
from edgegen.profiling import baselines, peak
from edgegen.profiling.flops import count_flops
from edgegen.profiling.stats import summary
from edgegen.profiling.worker import decode
from edgegen.runtimes.api import open_manifest
from edgegen.runtimes.stages import generator_class
from edgegen.runtimes.backends import backend_class, backend_names

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
MODE_BACKENDS = ("onnxruntime", "openvino")  # the backends with a throughput mode
REPORT_SCHEMA = "edgegen.profile/1"


@dataclass
class ProfileRequest:
    bundle: str
    backends: list[str] = field(default_factory=backend_names)
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    batches: list[int] = field(default_factory=lambda: [1, 16])
    steps: Optional[int] = None  # None: the sampler's default steps in this bundle
    sampler: Optional[str] = None  # None: the bundle's default sampler
    repeat: int = 20
    rounds: int = 1  # split the repeats into rounds that interleave the configurations in time
    seed: int = 0
    baselines: bool = True
    threads: int = 0  # 0: every runtime's default (all cores); else intra-op threads of every runtime
    modes: list[str] = field(default_factory=lambda: ["latency"])  # and/or "throughput" (backends/throughput.py)
    streams: int = 0  # throughput mode's parallel requests (0: one per thread)
    timeout_s: float = 1800.0


def check_request(req: ProfileRequest) -> None:
    for name in req.backends:
        backend_class(name)  # raises a one-line error for an unknown backend
    for p in req.precisions:
        if p not in PRECISIONS:
            raise EdgegenError(f"unknown precision '{p}' (choose {', '.join(PRECISIONS)})")
    if not req.batches or any(b <= 0 for b in req.batches):
        raise EdgegenError(f"batch sizes must be positive integers, got {req.batches}")
    if req.steps is not None and req.steps <= 0:
        raise EdgegenError(f"steps must be >= 1, got {req.steps}")
    if req.repeat <= 0:
        raise EdgegenError(f"repeat must be >= 1, got {req.repeat}")
    if req.rounds <= 0 or req.rounds > req.repeat:
        raise EdgegenError(f"rounds must be between 1 and repeat ({req.repeat}), got {req.rounds}")
    if req.threads < 0:
        raise EdgegenError(f"threads must be >= 0, got {req.threads}")
    from edgegen.runtimes.backends.throughput import MODES
    for mode in req.modes or ["?"]:
        if mode not in MODES:
            raise EdgegenError(f"unknown mode '{mode}' (choose {', '.join(MODES)})")
    if req.streams < 0:
        raise EdgegenError(f"streams must be >= 0, got {req.streams}")
    if not req.backends and not req.baselines:
        raise EdgegenError("nothing to profile: no backends and no baselines")


def _role_bytes(manifest, role: str, fmt: str, precision: str) -> Optional[int]:
    entry = manifest.formats(role).get(fmt, {}).get(precision)
    if entry is None:
        return None
    return entry["bytes"] + sum(c["bytes"] for c in entry.get("companions", []))


def _configs(req: ProfileRequest, manifest) -> list[dict]:
    """One entry per backend x precision (and baseline): what it would run, or why it is skipped."""
    role = manifest.sampling["role"]
    out = []
    for name in req.backends:
        cls = backend_class(name)
        for p in req.precisions:
            for mode in req.modes:
                reason = cls.unavailable()
                if reason is None and not cls.single_calls and not generator_class(manifest).has_plans:
                    reason = "it runs whole sampler plans; this bundle samples with the token loop"
                if reason is None and p not in manifest.formats(role).get(cls.format, {}):
                    reason = f"the bundle has no {p} {cls.format} model of '{role}'"
                if reason is None and mode != "latency" and cls.name not in MODE_BACKENDS:
                    reason = f"{cls.name} has no {mode} mode"
                out.append({"name": f"{cls.name}/{p}" + (f"/{mode}" if mode != "latency" else ""), "kind": "edgegen",
                            "backend": cls.name, "precision": p, "mode": mode, "format": cls.format, "skip": reason})
    if req.baselines:
        for kind, fmt, module in (("torch-eager", "torch", "torch"), ("diffusers-ort", "onnx", "diffusers")):
            reason = baselines.unsupported(manifest, req.sampler, kind)
            if reason is None:
                import importlib.util
                if importlib.util.find_spec(module) is None:
                    reason = f"the Python package '{module}' is not installed (pip install -e '.[bench]')"
                elif "fp32" not in manifest.formats(role).get(fmt, {}):
                    reason = f"the bundle has no fp32 {fmt} model"
            out.append({"name": f"baseline:{kind}", "kind": kind, "backend": kind, "precision": "fp32",
                        "format": fmt, "skip": reason})
    return out


def _worker_env(threads: int) -> dict:
    env = dict(os.environ)
    if threads:  # torch, numpy and OpenMP follow these; onnxruntime and openvino get the job's "threads"
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    return env


def _run_worker(job: dict, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="edgegen-profile-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        atomic_write_text(job_path, json.dumps(job))
        try:
            proc = subprocess.run([sys.executable, "-m", "edgegen.profiling.worker", str(job_path), str(out_path)],
                                  capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  env=_worker_env(job.get("threads", 0)))
        except subprocess.TimeoutExpired:
            return {"job": job, "error": f"timed out after {timeout:.0f} s"}
        if not out_path.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"job": job, "error": f"worker exited with {proc.returncode}: {tail[0]}"}
        return json.loads(out_path.read_text())


def _merge_rounds(rounds: list[dict]) -> dict:
    """One configuration's rounds as one result: cold-start figures from the first round (a fresh
    process each round, so the others are alike), every timed run, the highest peak memory."""
    out = dict(rounds[0])
    for key in ("run_seconds", "net_seconds", "step_seconds"):
        out[key] = [v for r in rounds for v in r.get(key) or []]
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rounds)
    return out


def _derive(res: dict, cfg: dict, batch: int, steps: int, flops: Optional[dict], peak_gflops: float,
            bandwidth: float, model_bytes: Optional[int]) -> dict:
    """Turn a worker's raw timings into the report's figures."""
    walls, nets = np.array(res["run_seconds"]), np.array(res["net_seconds"])
    calls = res["calls_per_run"]
    step_s = res.get("step_seconds") or list(walls / max(calls, 1))
    out = {"load_seconds": res["load_seconds"], "first_call_seconds": res["first_call_seconds"],
           "first_run_seconds": res["first_run_seconds"],
           "run_ms": summary(walls, 1000), "latency_per_sample_ms": summary(walls, 1000 / batch),
           "latency_per_step_ms": summary(step_s, 1000), "per_step_derived": not res.get("step_seconds"),
           "network_ms_per_run": summary(nets, 1000),
           "host_overhead_fraction": float(np.median((walls - nets) / walls)),
           "throughput_samples_per_s": float(batch / np.median(walls)), "calls_per_run": calls,
           "peak_rss_mb": res["peak_rss_mb"], "rss_start_mb": res["rss_start_mb"], "model_bytes": model_bytes,
           "timeline": res.get("timeline"), "precision_ran": res.get("precision_ran")}
    if flops is not None and np.median(nets) > 0:
        # profiling samples without guidance (like the baselines): each call sees `batch` items
        achieved = flops["flops"] * calls / np.median(nets) / 1e9
        intensity = flops["flops"] / flops["bytes"]
        out.update({"flops_per_call": flops["flops"], "achieved_gflops": float(achieved),
                    "peak_fraction": float(achieved / peak_gflops), "arithmetic_intensity": float(intensity),
                    "roofline_bound_gflops": float(min(peak_gflops, intensity * bandwidth))})
    return out


def profile_bundle(req: ProfileRequest, progress: bool = True) -> dict:
    """Measure everything ``req`` asks for; returns the report (report.py writes it)."""
    check_request(req)
    manifest = open_manifest(req.bundle)
    if not generator_class(manifest).has_plans:
        if req.sampler is not None:
            raise EdgegenError("token models have no sampler choice (they run the token loop)")
        req.steps = None
    else:
        from edgegen.runtimes.samplers import compile_plan
        plan = compile_plan(manifest.generator, req.sampler, req.steps)  # the bundle's defaults resolved
        req.sampler, req.steps = plan.sampler, plan.params["steps"]
    role = manifest.sampling["role"]
    configs = _configs(req, manifest)
    runnable = [c for c in configs if not c["skip"]]
    if not runnable:
        raise EdgegenError("nothing can run here: " + "; ".join(f"{c['name']}: {c['skip']}" for c in configs))

    # FLOPs per call: plan families call one network at a fixed shape; a token step's cost grows
    # with the cache, so token families get no per-call count (and no roofline)
    onnx_path = (manifest.formats(role).get("onnx", {}).get("fp32") if generator_class(manifest).has_plans
                 else None)
    flops = {b: count_flops(manifest.root / onnx_path["path"], b) for b in req.batches} if onnx_path else {}
    measured = _run_worker({"kind": "peak", "threads": req.threads}, req.timeout_s)
    if "error" in measured:
        raise EdgegenError(f"measuring the machine's peak failed: {measured['error']}")
    gemm, bw = measured["gemm"], measured["bandwidth"]

    # Rounds interleave the configurations in time (round 1 of every configuration, then round 2,
    # ...), so a burst of load from another process on a shared machine hits them alike.
    jobs = [(c, b) for c in runnable for b in req.batches]
    per_round = -(-req.repeat // req.rounds)
    raw: dict[int, list[dict]] = {i: [] for i in range(len(jobs))}
    bar = tqdm(total=len(jobs) * req.rounds, desc="profile", unit="run", disable=not progress, dynamic_ncols=True)
    for r in range(req.rounds):
        for i, (cfg, batch) in enumerate(jobs):
            if raw[i] and "error" in raw[i][-1]:
                bar.update(1)
                continue
            bar.set_postfix_str(f"{cfg['name']} batch {batch}" + (f" round {r + 1}" if req.rounds > 1 else ""))
            job = {"kind": cfg["kind"], "bundle": str(manifest.root), "backend": cfg["backend"],
                   "precision": cfg["precision"], "batch": batch, "sampler": req.sampler, "steps": req.steps,
                   "repeat": per_round, "seed": req.seed, "threads": req.threads,
                   "mode": cfg.get("mode", "latency"), "streams": req.streams}
            raw[i].append(_run_worker(job, req.timeout_s))
            bar.update(1)
    results = []
    for i, (cfg, batch) in enumerate(jobs):
        entry = {"name": cfg["name"], "kind": cfg["kind"], "backend": cfg["backend"],
                 "precision": cfg["precision"], "batch": batch, "mode": cfg.get("mode", "latency")}
        failed = [x for x in raw[i] if "error" in x]
        if failed:
            entry.update(status="failed", reason=failed[0]["error"])
        else:
            res = _merge_rounds(raw[i])
            entry.update(status="ok", rounds=len(raw[i]),
                         **_derive(res, cfg, batch, req.steps, flops.get(batch), gemm["gflops"], bw["gbytes_per_s"],
                                   _role_bytes(manifest, role, cfg["format"], cfg["precision"])))
            entry["_samples"] = decode(res["samples"])
        results.append(entry)
    bar.close()
    _compare(results, req.batches)
    skipped = [{"name": c["name"], "status": "skipped", "reason": c["skip"]} for c in configs if c["skip"]]
    return {"schema": REPORT_SCHEMA, "bundle": str(manifest.root), "family": manifest.family,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "request": asdict(req), "machine": peak.machine(), "peak": {"gemm": gemm, "bandwidth": bw},
            "flops": {str(b): f for b, f in flops.items()}, "results": results, "skipped": skipped}


def _compare(results: list[dict], batches: list[int]) -> None:
    """Speed-up of each result over the baselines, and sample agreement with the first result."""
    for b in batches:
        ok = [r for r in results if r["batch"] == b and r["status"] == "ok"]
        if not ok:
            continue
        ref = ok[0]
        base = {r["kind"]: r["latency_per_sample_ms"]["p50"] for r in ok if r["kind"] != "edgegen"}
        for r in ok:
            r["speedup_vs"] = {k: v / r["latency_per_sample_ms"]["p50"] for k, v in base.items()}
            r["agreement"] = {"reference": ref["name"],
                              "max_abs_diff": float(np.abs(r["_samples"] - ref["_samples"]).max())}
    for r in results:
        r.pop("_samples", None)
