"""``edgegen calibrate``: add INT8 models to a bundle, gated on quality, atomically.

1. Record the calibration set from real fp32 sampling trajectories (record.py) and build
   the portable artifact from it (artifact.py), stored in ``calibration/``.
2. Quantize for every requested format from that artifact: ONNX Runtime QDQ, OpenVINO NNCF,
   the TensorRT calibration cache, Core ML compressed packages.
3. Gate the ONNX Runtime and OpenVINO int8 models against fp32 (gate.py); when one is over
   budget, rank layers by sensitivity and keep the worst in float until it is within
   budget (sensitivity.py). The naive baseline (same quantizer, calibrated on Gaussian
   inputs at one timestep) is measured beside it.
4. Write ``calibration/report.json`` and the manifest. Everything happens in a temporary copy
   of the bundle that replaces the bundle only when all of it succeeded; on any failure
   (including a budget that cannot be met) the bundle is left byte for byte as it was.
"""
from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgegen import __version__
from edgegen.calibration import artifact as artifact_mod
from edgegen.calibration import gate, record, sensitivity
from edgegen.calibration.gate import Budget, GateSettings
from edgegen.calibration.quantizers import QUANTIZERS, QuantContext
from edgegen.errors import EdgegenError
from edgegen.manifest import MANIFEST, Manifest, file_entry, read_manifest
from edgegen.paths import atomic_dir, atomic_write_text

FORMATS = tuple(QUANTIZERS)  # the registry (quantizers.py) in calibration order
GATED = {f: q.backend for f, q in QUANTIZERS.items() if q.gated}  # formats whose int8 model runs (and is gated) here
REPORT_SCHEMA = "edgegen.calibration-report/1"


def parse_formats(text: str) -> list[str]:
    from edgegen.config import parse_choices
    return parse_choices(text, FORMATS, "calibration format")


@dataclass
class CalibrateRequest:
    bundle: Path
    formats: list[str] = field(default_factory=lambda: ["onnx", "openvino"])
    calls: int = 256
    seed: int = record.RECORD_SEED
    budget: Budget = field(default_factory=Budget)
    gate: GateSettings = field(default_factory=GateSettings)
    mixed_precision: bool = True
    naive_baseline: bool = True
    range_method: str = "minmax"  # or "percentile" (99.99th of |x|)
    sensitivity_rows: int = 64
    coreml_batches: Optional[tuple[int, ...]] = None  # default: the bundle's Core ML batches, else (1,)
    allow_over_budget: bool = False  # keep the best model found and report it as over budget
    progress: bool = True
    # FID/accuracy of a pipeline (gate.Scorer); the CLI passes edgegen.train.evaluate.gate_scorer's.
    # None: drift is the whole gate, for the reason below.
    scorer: Optional[gate.Scorer] = None
    no_scorer_reason: str = "no quality scorer given: drift is the gate"


def _check(req: CalibrateRequest, manifest: Manifest) -> str:
    from edgegen.runtimes.stages import generator_class
    if not generator_class(manifest).has_plans:
        raise EdgegenError(f"calibration records sampler-plan trajectories; '{manifest.family}' bundles sample "
                           "with the token loop (not supported)")
    if req.calls <= 0:
        raise EdgegenError(f"the calibration set is empty (--calls {req.calls}): give at least 1 call")
    if req.range_method not in ("minmax", "percentile"):
        raise EdgegenError(f"unknown activation range method '{req.range_method}' (choose minmax, percentile)")
    gate.check_settings(req.gate)
    role = manifest.sampling["role"]
    files = manifest.formats(role)
    if "fp32" not in files.get("onnx", {}):
        raise EdgegenError(f"bundle {manifest.root} has no fp32 ONNX model of '{role}' to calibrate "
                           "(export it with --format onnx first)")
    if "openvino" in req.formats and "fp32" not in files.get("openvino", {}):
        raise EdgegenError(f"bundle {manifest.root} has no fp32 OpenVINO model of '{role}' "
                           "(export it with --format openvino, or leave openvino out of --formats)")
    if "coreml" in req.formats and "fp32" not in files.get("torch", {}):
        raise EdgegenError(f"bundle {manifest.root} has no fp32 torch weights of '{role}' for Core ML")
    return role


def _pipe(manifest: Manifest, backend: str, precision: str, threads: int, generator_from: Optional[Manifest] = None):
    """The pipeline whose generator role runs at ``precision`` (read from ``generator_from``, default
    ``manifest``); every other role (text encoder, VAE decoder) stays fp32: only the generator is
    calibrated, and its int8 model is what the gate measures."""
    from edgegen.runtimes.api import Pipeline
    from edgegen.runtimes.backends import create_backend
    gen = create_backend(backend, generator_from or manifest, manifest.generator["role"], precision, threads=threads)
    return Pipeline(manifest, gen, threads=threads)


class _Search:
    """Quantize one format, gate it, and keep layers in float until it is within budget."""

    def __init__(self, req: CalibrateRequest, manifest: Manifest, role: str, art, ranking_fn, ctx: QuantContext):
        self.req, self.m, self.role, self.art, self.ctx = req, manifest, role, art, ctx
        self.ranking_fn = ranking_fn
        self.refs: dict[str, gate.Reference] = {}  # backend -> fp32 reference

    def reference(self, backend: str) -> gate.Reference:
        if backend not in self.refs:
            self.refs[backend] = gate.Reference(_pipe(self.m, backend, "fp32", self.req.gate.threads), self.req.gate,
                                                self.req.scorer, self.req.progress, self.req.no_scorer_reason)
        return self.refs[backend]

    def quantize(self, fmt: str, keep: list[str]) -> dict:
        entry, info = QUANTIZERS[fmt].quantize(self.ctx, keep)
        entry.update({"calibration": "calibration/artifact.json", "quantization": info})
        self.m.set_file(self.role, fmt, "int8", entry)
        return info

    def run(self, fmt: str) -> dict:
        req, backend = self.req, GATED[fmt]
        ref = self.reference(backend)
        attempts = []
        keep: list[str] = []
        info = self.quantize(fmt, keep)
        pipe = _pipe(self.m, backend, "int8", req.gate.threads)
        result = gate.measure(pipe, ref, req.budget, req.progress)
        attempts.append({"kept_float": [], **_brief(result)})
        if not result["passed"] and req.mixed_precision:
            ranking = self.ranking_fn()
            for k in sensitivity.schedule(len(ranking)):
                keep = [r["layer"] for r in ranking[:k]]
                info = self.quantize(fmt, keep)
                pipe = _pipe(self.m, backend, "int8", req.gate.threads)
                result = gate.measure(pipe, ref, req.budget, req.progress)
                attempts.append({"kept_float": keep, **_brief(result)})
                if result["passed"]:
                    break
        result["speed"] = gate.speed(pipe, ref)
        return {"backend": backend, "quantization": info, "kept_float": keep, "attempts": attempts,
                "reference": {"fid": (ref.scores or {}).get("fid"), "accuracy": (ref.scores or {}).get("accuracy")},
                **result}


def _brief(r: dict) -> dict:
    out = {"passed": r["passed"], "drift_mean_abs": r["drift"]["mean_abs"]}
    if "fid" in r:
        out["fid_rise"] = r["fid"]["rise"]
    if "accuracy" in r:
        out["accuracy_drop_points"] = r["accuracy"]["drop_points"]
    return out


def _naive(req: CalibrateRequest, m: Manifest, role: str, ref: gate.Reference, scratch: Path) -> dict:
    """The same ONNX Runtime quantizer calibrated on N(0, 1) inputs at the first sampler timestep."""
    from edgegen.calibration import ort_quant
    from edgegen.export.onnx_data import copy_model
    pipe = _pipe(m, "onnxruntime", "fp32", req.gate.threads)
    plan = pipe.plan(**{k: v for k, v in gate._plan_kw(m).items() if k != "eta"})
    t0 = next((s["t"] for s in plan.steps if s["t"] is not None), None)
    spec = m.role(role)
    calib = record.naive(spec, req.calls, m.num_classes, t0, req.seed)
    art = artifact_mod.build(m.file(role, "onnx"), calib, progress=False)
    naive_m = Manifest(scratch, copy.deepcopy(m.data))
    copy_model(m.file(role, "onnx"), scratch / "fp32.onnx")  # with its external data (a network over 2 GB)
    ort_quant.quantize(m.file(role, "onnx"), scratch / "naive.int8.onnx", art, spec, [], req.range_method)
    naive_m.data["roles"][role]["files"]["onnx"] = {"fp32": {"path": "fp32.onnx"}, "int8": {"path": "naive.int8.onnx"}}
    result = gate.measure(_pipe(m, "onnxruntime", "int8", req.gate.threads, generator_from=naive_m), ref, req.budget,
                          req.progress)
    return {"calibration": calib.provenance, "backend": "onnxruntime", **result}


def calibrate(req: CalibrateRequest) -> dict:
    """Calibrate ``req.bundle`` in place (atomically); returns the report."""
    bundle = Path(req.bundle)
    original = read_manifest(bundle, verify=True)
    role = _check(req, original)
    with atomic_dir(bundle) as work:  # write-locked copy, swapped in at the end (edgegen.paths)
        shutil.copytree(bundle, work, dirs_exist_ok=True)
        report = _calibrate_copy(req, Manifest(work, copy.deepcopy(original.data)), role, work)
        read_manifest(work, verify=True)  # every listed file exists and matches its sha256
    return report


def _calibrate_copy(req: CalibrateRequest, m: Manifest, role: str, tmp: Path) -> dict:
    started = time.time()
    root = m.root
    cal = root / "calibration"
    if cal.exists():
        shutil.rmtree(cal)
    # 1. calibration set and artifact
    fp32 = _pipe(m, "onnxruntime", "fp32", req.gate.threads)
    calib = record.record(fp32, req.calls, seed=req.seed, progress=req.progress)
    art = artifact_mod.build(m.file(role, "onnx"), calib, progress=req.progress)
    art.provenance.update({"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "edgegen_version": __version__, "range_method": req.range_method})
    names = art.save(cal)
    ranking: list = []

    def ranking_fn():
        if not ranking:
            ranking.extend(sensitivity.rank(m.file(role, "onnx"), art, m.role(role), req.sensitivity_rows,
                                            req.range_method, req.progress))
        return ranking

    report: dict = {"schema": REPORT_SCHEMA, "bundle": str(req.bundle), "role": role, "budget": req.budget.to_json(),
                    "gate_settings": vars(req.gate).copy(), "calibration": calib.provenance,
                    "artifact": art.provenance, "formats": {}}
    # 2-3. quantize, gate, mixed precision
    ctx = QuantContext(req, m, role, art, calib, names, report)
    search = _Search(req, m, role, art, ranking_fn, ctx)
    for fmt in [f for f in req.formats if QUANTIZERS[f].gated]:
        report["formats"][fmt] = search.run(fmt)
    if "onnx" in req.formats:
        _npu_int8(m, role, report)
    if ranking:
        report["sensitivity"] = ranking
    if req.naive_baseline and "onnx" in req.formats:
        with tempfile.TemporaryDirectory(dir=tmp) as scratch:
            report["naive_baseline"] = _naive(req, m, role, search.reference("onnxruntime"), Path(scratch))
    for fmt in [f for f in req.formats if not QUANTIZERS[f].gated]:  # structural: checked, run elsewhere
        report["formats"][fmt] = QUANTIZERS[fmt].write(ctx)
    report["kept_float"] = {f: r["kept_float"] for f, r in report["formats"].items() if "kept_float" in r}
    failed = [f for f, r in report["formats"].items() if r.get("passed") is False]
    report["passed"] = not failed
    report["seconds"] = time.time() - started
    if failed and not req.allow_over_budget:
        path = Path(req.bundle).resolve().parent / f"{Path(req.bundle).name}.calibration-failed.json"
        atomic_write_text(path, json.dumps(report, indent=1))
        detail = "; ".join(f"{f}: {gate.describe(report['formats'][f])}" for f in failed)
        raise EdgegenError(f"quality budget not met ({detail}) even with "
                           f"{max(len(report['formats'][f]['kept_float']) for f in failed)} layers in float; "
                           f"the bundle is unchanged; report: {path}")
    atomic_write_text(cal / "report.json", json.dumps(report, indent=1))
    m.data["calibration"] = {**{k: f"calibration/{v}" for k, v in names.items()}, "report": "calibration/report.json",
                             "provenance": {**calib.provenance, **art.provenance}, "budget": req.budget.to_json(),
                             "passed": report["passed"], "kept_float": report["kept_float"]}
    extra = m.data.setdefault("files", {})
    for k in list(extra):
        if k.startswith("calibration_"):
            del extra[k]
    for k, v in names.items():
        extra[f"calibration_{k}"] = file_entry(root, f"calibration/{v}")
    extra["calibration_report"] = file_entry(root, "calibration/report.json")
    atomic_write_text(root / MANIFEST, json.dumps(m.data, indent=1))
    return report


def _npu_int8(m: Manifest, role: str, report: dict) -> None:
    """A bundle with an npu target also gets the static-shape QDQ variants of the new int8 model."""
    from edgegen.export import npu_export
    out = npu_export.write_int8(m, role)
    if out is None:
        return
    entry, check = out
    if not check["passed"]:
        raise EdgegenError(f"the static npu int8 variant of '{role}' failed its check ({check['summary']}); "
                           "the bundle is unchanged")
    m.data["roles"][role]["files"]["npu"]["int8"] = entry
    report["formats"]["npu"] = {"checks": {"int8": check}}
