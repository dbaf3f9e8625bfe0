"""``edgegen profile --target-quality``: the fastest configuration on this machine whose quality stays
within the budget of fp32 DDIM-50 (frontier.py: FID within 10%, accuracy within 1 point).

Candidates are variant x plan x batch, a variant being backend x precision x mode:
- every precision the bundle has for each backend asked (its gated int8 / bf16 / fp16 entries), and
  OpenVINO's fp32 IR with a bf16 precision hint (``bf16-hint``) on a CPU with bf16 dot products
  (AVX512-BF16 / AMX): it needs no new file, and it is scored here like every other candidate;
- ``latency`` and, when asked, ``throughput`` mode (backends/throughput.py: the same samples, so
  quality is scored once for both);
- plans (``SAMPLER-STEPS``), and the reference plan on the reference variant (fp32 on the first
  backend asked), which meets the budget by definition: there is always an answer.

Order of work: every candidate is timed in the same run (``repeat`` rounds, interleaved, one thread
count for all, after a warm-up run that compiles), then candidates are scored in order of speed,
fastest first, until one is within budget: that one is chosen, and every faster one was scored and
failed. ``score_all`` scores the rest too (the whole table). Quality comes from a ``Scorer`` the caller
passes (calibration/gate.py's signature; the CLI passes edgegen.train.evaluate's): this layer does not
import training code.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from edgegen.errors import EdgegenError
from edgegen.paths import atomic_dir
from edgegen.profiling import frontier, peak
from edgegen.profiling.frontier import Budget, parse_plan, plan_options

SCHEMA = "edgegen.target-quality/1"
QUICK_PLANS = ["dpmpp_2m-10", "dpmpp_2m:noclip-10", "unipc-10", "dpmpp_2m-15", "dpmpp_2m-20", "unipc-20", "ddim-20"]
FULL_PLANS = ["ddim-50", "ddim-20", "ddim-10", "dpmpp_2m-20", "dpmpp_2m-15", "dpmpp_2m-10", "unipc-20", "unipc-10",
              "dpmpp_2m:noclip-15", "dpmpp_2m:noclip-10"]
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
MODE_BACKENDS = ("onnxruntime", "openvino")  # the backends with a throughput mode
# scorer(pipe, n=, seed=, sampler=, steps=, batch_size=, progress=, **plan options) -> {"fid", "accuracy", ...}
Scorer = Callable[..., dict]


@dataclass
class TargetRequest:
    bundle: str
    backends: list[str] = field(default_factory=lambda: ["onnxruntime", "openvino"])
    precisions: Optional[list[str]] = None  # None: every precision the bundle has, and OpenVINO's bf16 hint
    plans: list[str] = field(default_factory=lambda: list(QUICK_PLANS))
    modes: list[str] = field(default_factory=lambda: ["latency"])
    streams: int = 0  # throughput mode's streams (0: one per thread)
    batches: list[int] = field(default_factory=lambda: [16])
    n: int = 200  # samples scored per candidate (the full run: 500, as benchmarks/frontier.md)
    seed: int = 0
    repeat: int = 3  # timed runs per candidate (interleaved rounds)
    threads: int = 0  # 0: each runtime's default
    reference: str = frontier.REFERENCE
    fid_rise: float = frontier.FID_RISE
    acc_drop_points: float = frontier.ACC_DROP_POINTS
    score_all: bool = False


@dataclass
class Variant:
    backend: str
    precision: str  # the bundle entry it runs
    label: str  # how it is named: the precision, or "bf16-hint"
    mode: str
    opts: dict

    @property
    def name(self) -> str:
        return f"{self.backend} {self.label}" + (f" {self.mode}" if self.mode != "latency" else "")

    @property
    def quality_key(self) -> str:  # throughput mode computes latency mode's samples
        return f"{self.backend} {self.label}"


def check_request(req: TargetRequest) -> None:
    from edgegen.runtimes.backends import backend_class
    from edgegen.runtimes.backends.throughput import MODES
    for name in req.backends:
        backend_class(name)
    for p in req.precisions or []:
        if p not in PRECISIONS and p != "bf16-hint":
            raise EdgegenError(f"unknown precision '{p}' (choose {', '.join(PRECISIONS)}, bf16-hint)")
    for plan in [*req.plans, req.reference]:
        plan_options(*parse_plan(plan))
    for mode in req.modes:
        if mode not in MODES:
            raise EdgegenError(f"unknown mode '{mode}' (choose {', '.join(MODES)})")
    if not req.backends or not req.plans or not req.modes:
        raise EdgegenError("--target-quality needs at least one backend, plan and mode")
    if not req.batches or any(b <= 0 for b in req.batches):
        raise EdgegenError(f"batch sizes must be positive integers, got {req.batches}")
    if req.n < 2:
        raise EdgegenError(f"n must be >= 2 (FID needs two samples), got {req.n}")
    if req.repeat <= 0 or req.threads < 0 or req.streams < 0:
        raise EdgegenError("repeat must be >= 1, threads and streams >= 0")
    if req.fid_rise < 0 or req.acc_drop_points < 0:
        raise EdgegenError("the budget (FID rise, accuracy drop) must be >= 0")


def variants(req: TargetRequest, manifest) -> tuple[list[Variant], list[dict]]:
    """(what will run, what is skipped and why)."""
    from edgegen.profiling.cpu_features import machine_features
    from edgegen.runtimes.backends import backend_class
    role = manifest.sampling["role"]
    out, skipped = [], []
    bf16_cpu = bool(machine_features().get("bf16_native"))
    for name in req.backends:
        cls = backend_class(name)
        reason = cls.unavailable() or (None if cls.single_calls else "it runs whole plans only")
        have = [p for p in PRECISIONS if p in manifest.formats(role).get(cls.format, {})]
        labels = [(p, p) for p in have]
        if cls.name == "openvino" and "fp32" in have and "bf16" not in have and bf16_cpu:
            labels.append(("fp32", "bf16-hint"))
        if req.precisions is not None:
            missing = [p for p in req.precisions if p not in [lab for _, lab in labels]]
            skipped += [{"name": f"{cls.name} {p}", "reason": f"the bundle has no {p} {cls.format} model"
                         + (" (bf16-hint: OpenVINO fp32 on a CPU with bf16 dot products)" if p == "bf16-hint" else "")}
                        for p in missing]
            labels = [(p, lab) for p, lab in labels if lab in req.precisions]
        if reason:
            skipped.append({"name": cls.name, "reason": reason})
            continue
        for precision, label in labels:
            for mode in req.modes:
                if mode != "latency" and cls.name not in MODE_BACKENDS:
                    skipped.append({"name": f"{cls.name} {label} {mode}", "reason": f"{cls.name} has no {mode} mode"})
                    continue
                opts = {"threads": req.threads} if req.threads else {}
                if mode != "latency":
                    opts.update(mode=mode, streams=req.streams)
                if label == "bf16-hint":
                    opts["inference_precision"] = "bf16"
                out.append(Variant(cls.name, precision, label, mode, opts))
    if not out:
        raise EdgegenError("nothing can run here: " + "; ".join(f"{s['name']}: {s['reason']}" for s in skipped))
    return out, skipped


def _reference_variant(vs: list[Variant]) -> Variant:
    ref = next((v for v in vs if v.label == "fp32" and v.mode == "latency"), None)
    if ref is None:
        raise EdgegenError("--target-quality needs an fp32 model in latency mode on one of the backends asked "
                           "(the reference is fp32 DDIM-50)")
    return ref


def find(req: TargetRequest, scorer: Scorer, progress: bool = True) -> dict:
    """Time every candidate, score them fastest first, and name the fastest within budget per batch."""
    from edgegen.runtimes.api import Pipeline, open_manifest
    from edgegen.runtimes.stages import generator_class
    check_request(req)
    started = time.time()
    manifest = open_manifest(req.bundle)
    if not generator_class(manifest).has_plans:
        raise EdgegenError("--target-quality needs a bundle that samples with plans (this one runs a token loop)")
    load_before = list(os.getloadavg())
    vs, skipped = variants(req, manifest)
    ref_v = _reference_variant(vs)
    budget = Budget(req.fid_rise, req.acc_drop_points)
    pipes = {v.name: Pipeline(manifest, v.backend, v.precision, **v.opts) for v in vs}
    plans = [(v, p) for v in vs for p in req.plans]
    if (ref_v, req.reference) not in plans:
        plans.append((ref_v, req.reference))  # the fallback that always meets the budget

    def runner(v: Variant, plan: str, batch: int):
        pipe, kw = pipes[v.name], plan_options(*parse_plan(plan))
        return lambda: pipe.sample(batch, seed=req.seed, batch_size=batch, **kw)

    # timing: a warm-up run (compiles), then ``repeat`` interleaved rounds
    rows = []
    bar = tqdm(total=len(plans) * len(req.batches) * (req.repeat + 1), desc="target-quality: timing", unit="run",
               disable=not progress, dynamic_ncols=True)
    for batch in req.batches:
        runs = {}
        for v, plan in plans:
            bar.set_postfix_str(f"{v.name} {plan} batch {batch} (warm-up)")
            run = runner(v, plan, batch)
            run()
            bar.update(1)
            runs[(v.name, plan)] = run
        times = frontier.interleaved(runs, batch, req.repeat, tick=lambda _: bar.update(1))
        for v, plan in plans:
            t = times[(v.name, plan)]
            rows.append({"name": f"{v.name} {plan}", "backend": v.backend, "precision": v.label, "mode": v.mode,
                         "plan": plan, "batch": batch, "ms_per_sample": t["per_sample_ms"],
                         "min_ms_per_sample": t["min_per_sample_ms"], "runs": t["runs"], "_variant": v})
    bar.close()

    # quality: the reference, then candidates fastest first until one is within budget
    scores: dict = {}
    total = len({(v.quality_key, plan) for v, plan in plans}) if req.score_all else None  # else: until one is in
    qbar = tqdm(total=total, desc="target-quality: scoring", unit="config", disable=not progress, dynamic_ncols=True)

    def score(v: Variant, plan: str) -> dict:
        key = (v.quality_key, plan)
        if key not in scores:
            qbar.set_postfix_str(f"{v.quality_key} {plan}")
            s = scorer(pipes[v.name], n=req.n, seed=req.seed, batch_size=min(100, req.n), progress=False,
                       **plan_options(*parse_plan(plan)))
            scores[key] = {"fid": float(s["fid"]), "accuracy": None if s.get("accuracy") is None
                           else float(s["accuracy"])}
            qbar.update(1)
        return scores[key]

    ref = score(ref_v, req.reference)
    limits = budget.limits(ref)
    chosen = {}
    for batch in req.batches:
        ordered = sorted((r for r in rows if r["batch"] == batch), key=lambda r: r["ms_per_sample"])
        ref_ms = next(r["ms_per_sample"] for r in ordered if r["_variant"] is ref_v and r["plan"] == req.reference)
        for r in ordered:
            r["speedup_vs_reference"] = ref_ms / r["ms_per_sample"]
            if batch not in chosen or req.score_all:
                q = score(r["_variant"], r["plan"])
                r.update(fid=q["fid"], accuracy=q["accuracy"], scored=True, within_budget=budget.within(q, ref))
                if r["within_budget"] and batch not in chosen:
                    chosen[batch] = r["name"]
    qbar.close()
    for r in rows:  # unscored rows get a score measured for another batch size or mode, if any
        if "scored" not in r:
            cached = scores.get((r["_variant"].quality_key, r["plan"]))
            r.update(fid=cached and cached["fid"], accuracy=cached and cached["accuracy"], scored=bool(cached),
                     within_budget=None if cached is None else budget.within(cached, ref))
    for r in rows:
        r.pop("_variant")
    from edgegen.profiling.cpu_features import machine_features
    return {"schema": SCHEMA, "bundle": str(manifest.root), "family": manifest.family,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "request": asdict(req),
            "machine": {**peak.machine(), "load_before": load_before, "load_after": list(os.getloadavg()),
                        "cpu_flags": machine_features().get("summary")},
            "reference": {"name": f"{ref_v.name} {req.reference}", **ref, "n": req.n, "seed": req.seed},
            "budget": {"fid_rise": req.fid_rise, "acc_drop_points": req.acc_drop_points, **limits},
            "chosen": {str(b): chosen.get(b) for b in req.batches},
            "candidates": sorted(rows, key=lambda r: (r["batch"], r["ms_per_sample"])), "skipped": skipped,
            "seconds": time.time() - started}


def markdown(report: dict) -> str:
    m, ref, b = report["machine"], report["reference"], report["budget"]
    req = report["request"]
    acc = lambda a: "-" if a is None else f"{100 * a:.1f}%"  # noqa: E731
    lines = [f"# Target quality: {report['bundle']}", "",
             f"Machine: {m.get('cpu')}, {m.get('usable_cores')} usable cores, {m.get('cpu_flags')}; threads per runtime: "
             f"{req['threads'] or 'the runtime default'}; 1-minute load {m['load_before'][0]:.1f} before, "
             f"{m['load_after'][0]:.1f} after. Timing: {req['repeat']} interleaved rounds after a warm-up, median "
             f"per sample. Quality: n = {req['n']}, seed {req['seed']}, the project evaluator.", "",
             f"Reference {ref['name']}: FID {ref['fid']:.3f}, accuracy {acc(ref['accuracy'])}. Budget: FID <= "
             f"{b['max_fid']:.3f} (+{100 * b['fid_rise']:.0f}%)"
             + ("" if b["min_accuracy"] is None else f", accuracy >= {acc(b['min_accuracy'])} "
                f"(-{b['acc_drop_points']:g} point)") + ".", ""]
    for batch, name in report["chosen"].items():
        row = next((r for r in report["candidates"] if r["name"] == name and r["batch"] == int(batch)), None)
        lines.append(f"- batch {batch}: **{name}**, {row['ms_per_sample']:.2f} ms/sample, "
                     f"{row['speedup_vs_reference']:.2f}x faster than the reference, FID {row['fid']:.3f}, "
                     f"accuracy {acc(row['accuracy'])}" if row else f"- batch {batch}: nothing within budget")
    lines += ["", "Candidates are scored fastest first until one is within budget"
              + (" (here: all of them)." if req["score_all"] else "; the slower ones are left unscored unless another batch "
                 "size or mode scored the same samples (--score-all scores every one)."), ""]
    for batch in report["chosen"]:
        lines += [f"## Batch {batch}", "", "| configuration | ms/sample | vs reference | FID | accuracy | within budget |",
                  "|---|---:|---:|---:|---:|---|"]
        for r in report["candidates"]:
            if r["batch"] != int(batch):
                continue
            ok = {True: "yes", False: "no", None: "not scored"}[r["within_budget"]]
            fid = "-" if r["fid"] is None else f"{r['fid']:.3f}"
            mark = "**" if r["name"] == report["chosen"][batch] else ""
            lines.append(f"| {mark}{r['name']}{mark} | {r['ms_per_sample']:.2f} | {r['speedup_vs_reference']:.2f}x | "
                         f"{fid} | {acc(r['accuracy'])} | {ok} |")
        lines.append("")
    if report["skipped"]:
        lines += ["Skipped: " + "; ".join(f"{s['name']} ({s['reason']})" for s in report["skipped"]), ""]
    lines.append(f"Took {report['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path) -> Path:
    """target-quality.json and target-quality.md into ``out`` (replaced atomically)."""
    with atomic_dir(Path(out)) as tmp:
        (tmp / "target-quality.json").write_text(json.dumps(report, indent=2))
        (tmp / "target-quality.md").write_text(markdown(report))
    return Path(out)
