"""Gated float precisions: ``bf16`` and ``fp16`` as bundle precisions, each with its own gate.

    edgegen calibrate BUNDLE --precision bf16      # OpenVINO bf16 (and what else runs here)
    edgegen calibrate BUNDLE --precision fp16      # ORT fp16 ONNX, OpenVINO f16 hint

A reduced-precision variant is a manifest entry of precision ``bf16``/``fp16`` beside ``fp32``:

- OpenVINO: the fp32 IR itself with ``"inference_precision": "bf16"`` (or ``"f16"``) in the
  entry; the backend passes it as INFERENCE_PRECISION_HINT (openvino_backend.py). No new file:
  the CPU plugin converts the weights when it compiles. On a CPU without AVX512-FP16 the plugin
  runs an ``f16`` request in bf16; the report records what it ran (``compiled_precisions``).
- ONNX Runtime fp16: ``onnx/ROLE.fp16.onnx`` converted by onnxruntime's own float16 converter
  (``onnxruntime.transformers.float16``, the maintained copy of onnxconverter-common's) with
  float32 inputs and outputs, so the runtime feeds it like the fp32 model.
- ONNX Runtime bf16: refused with the reason (VARIANTS): ONNX's Conv does not admit bfloat16
  and ORT's CPU provider has no bf16 kernels for Conv/Gemm/MatMul.

The gate is int8's (gate.py, same machinery): trajectory drift of the gate trajectory from the
same noise, and FID and class accuracy of the same ``n`` samples against fp32 on the same
backend, within BUDGETS (stated here and in docs/notes/issue-19.md). A variant over budget is not
written: the whole bundle is replaced only when every requested variant passed (atomic_dir).
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from edgegen.calibration import gate
from edgegen.calibration.gate import Budget, GateSettings
from edgegen.errors import EdgegenError
from edgegen.manifest import MANIFEST, Manifest, file_entry, read_manifest
from edgegen.paths import atomic_dir, atomic_write_text

REPORT_SCHEMA = "edgegen.precision-report/1"
# The budgets: the quality budget of the time-to-quality frontier (issue 19: FID within 10% and
# class accuracy within 1 point of fp32), and a drift bound. bf16 keeps 8 mantissa bits, so one
# network call differs from fp32 by about 1e-2 (measured on the small DDPM); over the 50-step
# DDIM gate trajectory the mean absolute drift of the final samples stays well under 0.05 when
# the model is healthy (docs/notes/issue-19.md has the measured figures).
BUDGETS = {
    "bf16": Budget(max_accuracy_drop_points=1.0, max_fid_rise=0.10, max_drift_mean_abs=0.05),
    "fp16": Budget(max_accuracy_drop_points=1.0, max_fid_rise=0.10, max_drift_mean_abs=0.02),
}
PRECISIONS = tuple(BUDGETS)


def _openvino_hint(hint: str) -> Callable:
    def write(m: Manifest, role: str) -> dict:
        entry = copy.deepcopy(m.formats(role)["openvino"]["fp32"])
        entry["inference_precision"] = hint
        return entry
    write.__doc__ = f"the fp32 IR compiled with INFERENCE_PRECISION_HINT={hint}"
    return write


def _onnx_fp16(m: Manifest, role: str) -> dict:
    """onnx/ROLE.fp16.onnx: fp16 weights and compute, float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = onnx.load(str(m.file(role, "onnx", "fp32")))
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    rel = f"onnx/{role}.fp16.onnx"
    tmp = m.root / f"{rel}.tmp"
    onnx.save(half, str(tmp))
    tmp.replace(m.root / rel)
    return file_entry(m.root, rel)


@dataclass(frozen=True)
class Variant:
    fmt: str
    backend: str
    write: Optional[Callable] = None  # (manifest, role) -> entry
    refused: Optional[str] = None  # why this format cannot have this precision here


# (format, precision) -> how the variant is made; the formats a precision runs on, in order
VARIANTS = {
    ("openvino", "bf16"): Variant("openvino", "openvino", _openvino_hint("bf16")),
    ("openvino", "fp16"): Variant("openvino", "openvino", _openvino_hint("f16")),
    ("onnx", "fp16"): Variant("onnx", "onnxruntime", _onnx_fp16),
    ("onnx", "bf16"): Variant("onnx", "onnxruntime", refused=(
        "ONNX Runtime has no bf16 CPU kernels for this network (ONNX Conv does not admit bfloat16 "
        "inputs; the CPU provider's Conv/Gemm/MatMul are float32, float16 and int8 only): use openvino")),
}


def formats_for(precision: str) -> list[str]:
    return [f for (f, p), v in VARIANTS.items() if p == precision and v.refused is None]


@dataclass
class PrecisionRequest:
    bundle: Path
    precision: str = "bf16"
    formats: Optional[list[str]] = None  # None: every format that runs this precision here and is in the bundle
    budget: Optional[Budget] = None  # None: BUDGETS[precision]
    gate: GateSettings = field(default_factory=GateSettings)
    allow_over_budget: bool = False
    progress: bool = True
    scorer: Optional[gate.Scorer] = None  # the CLI passes edgegen.train.evaluate.gate_scorer's
    no_scorer_reason: str = "no quality scorer given: drift is the gate"


def _plan(req: PrecisionRequest, m: Manifest, role: str) -> list[Variant]:
    if req.precision not in BUDGETS:
        raise EdgegenError(f"unknown float precision '{req.precision}' (choose {', '.join(PRECISIONS)}; "
                           "int8 is `edgegen calibrate` without --precision)")
    from edgegen.runtimes.stages import generator_class
    if not generator_class(m).has_plans:
        raise EdgegenError(f"the precision gate runs sampler-plan trajectories; '{m.family}' bundles sample "
                           "with the token loop (not supported)")
    gate.check_settings(req.gate)
    have = m.formats(role)
    fmts = req.formats if req.formats is not None else [f for f in formats_for(req.precision) if f in have]
    out = []
    for f in fmts:
        v = VARIANTS.get((f, req.precision))
        if v is None:
            raise EdgegenError(f"no {req.precision} variant for format '{f}' (formats with one: "
                               f"{', '.join(formats_for(req.precision)) or 'none'})")
        if v.refused:
            raise EdgegenError(f"{f} {req.precision}: {v.refused}")
        if "fp32" not in have.get(f, {}):
            raise EdgegenError(f"bundle {m.root} has no fp32 {f} model of '{role}' (export it with --format {f})")
        from edgegen.runtimes.backends import unavailable
        reason = unavailable(v.backend)
        if reason:
            raise EdgegenError(f"{f} {req.precision} is gated on backend '{v.backend}', which cannot run here: {reason}")
        out.append(v)
    if not out:
        raise EdgegenError(f"bundle {m.root} has no format that runs {req.precision} here "
                           f"(formats with a {req.precision} variant: {', '.join(formats_for(req.precision))})")
    return out


def add_precision(req: PrecisionRequest) -> dict:
    """Write and gate the ``req.precision`` variants of ``req.bundle`` (atomically); returns the report."""
    from edgegen.runtimes.api import Pipeline
    bundle = Path(req.bundle)
    original = read_manifest(bundle, verify=True)
    role = original.generator["role"]
    variants = _plan(req, original, role)
    budget = req.budget or BUDGETS[req.precision]
    started = time.time()
    report: dict = {"schema": REPORT_SCHEMA, "bundle": str(bundle), "role": role, "precision": req.precision,
                    "budget": budget.to_json(), "gate_settings": vars(req.gate).copy(), "formats": {}}
    with atomic_dir(bundle) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(bundle, tmp)
        m = Manifest(tmp, copy.deepcopy(original.data))
        for v in variants:
            entry = v.write(m, role)
            ref = gate.Reference(Pipeline(m, v.backend, "fp32", threads=req.gate.threads), req.gate, req.scorer,
                                 req.progress, req.no_scorer_reason)
            m.set_file(role, v.fmt, req.precision, entry)
            pipe = Pipeline(m, v.backend, req.precision, threads=req.gate.threads)
            result = _renamed(gate.measure(pipe, ref, budget, req.progress), req.precision)
            result["speed"] = _renamed(gate.speed(pipe, ref), req.precision)
            result["ran"] = _ran(pipe.backend)
            report["formats"][v.fmt] = result
            entry["gate"] = {"passed": result["passed"], "report": f"calibration/precision-{req.precision}.json",
                             "ran": result["ran"].get("ran")}
            m.set_file(role, v.fmt, req.precision, entry)
        failed = [f for f, r in report["formats"].items() if not r["passed"]]
        report["passed"] = not failed
        report["seconds"] = time.time() - started
        if failed and not req.allow_over_budget:
            path = bundle.resolve().parent / f"{bundle.name}.{req.precision}-failed.json"
            atomic_write_text(path, json.dumps(report, indent=1))
            raise EdgegenError(f"{req.precision} over its quality budget ({'; '.join(f + ': ' + gate.describe(report['formats'][f]) for f in failed)}); "
                               f"the bundle is unchanged; report: {path}")
        rel = f"calibration/precision-{req.precision}.json"
        (tmp / "calibration").mkdir(exist_ok=True)
        atomic_write_text(tmp / rel, json.dumps(report, indent=1))
        m.add_side_file(f"precision_{req.precision}_report", file_entry(tmp, rel))
        atomic_write_text(tmp / MANIFEST, json.dumps(m.data, indent=1))
        read_manifest(tmp, verify=True)  # every listed file exists and matches its sha256
    return report


def _renamed(result: dict, precision: str) -> dict:
    """gate.py names the reduced precision "int8" in its figures; here it is ``precision``."""
    out = json.loads(json.dumps(result).replace('"int8_ms_per_call"', f'"{precision}_ms_per_call"'))
    for key in ("fid", "accuracy"):
        if key in out and "int8" in out[key]:
            out[key][precision] = out[key].pop("int8")
    return out


def _ran(backend) -> dict:
    """What the runtime says it ran (OpenVINO's compiled precision; ORT runs the file's types)."""
    if hasattr(backend, "compiled_precisions"):
        return backend.compiled_precisions()
    return {"ran": backend.precision, "detail": "onnxruntime runs the model file's types"}
