"""THE quantizer registry: one entry per bundle format ``edgegen calibrate`` can add int8 models to.

Two kinds of entry, told apart by what they declare (not by format name):

- gated (``backend`` and ``quantize``): the int8 model runs on this machine, so calibrate.py
  quantizes it, gates it against fp32 on ``backend`` (gate.py) and keeps sensitive layers in
  float until it is within budget. ``quantize(ctx, keep) -> (manifest entry, info)``.
- structural (``write``): the int8 model runs only elsewhere (TensorRT engines, Core ML on
  macOS); ``write(ctx) -> report section`` writes what the bundle carries and checks it here.

A new quantizer is one module beside these and one entry in QUANTIZERS (ARCHITECTURE.md).
"""
from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from typing import Callable, Optional

from edgegen.manifest import Manifest, file_entry


@dataclass
class QuantContext:
    """One calibration run, as the quantizers see it."""
    req: object  # calibrate.CalibrateRequest
    m: Manifest  # the bundle copy being calibrated
    role: str
    art: object  # artifact.Artifact
    calib: object  # record.CalibrationSet
    names: dict  # calibration file key -> file name under calibration/ (a writer may add its own)
    report: dict  # the report so far (structural writers read the gated results, e.g. kept_float)


@dataclass(frozen=True)
class Quantizer:
    fmt: str
    backend: Optional[str] = None  # gated: the backend that runs and gates the int8 model here
    quantize: Optional[Callable] = None  # gated: (ctx, keep) -> (entry, info)
    write: Optional[Callable] = None  # structural: (ctx) -> report section

    @property
    def gated(self) -> bool:
        return self.backend is not None


def _ort(ctx: QuantContext, keep: list[str]) -> tuple[dict, dict]:
    """ONNX Runtime QDQ, per-channel weights (ort_quant.py)."""
    from edgegen.calibration import ort_quant
    m, role = ctx.m, ctx.role
    rel = f"onnx/{role}.int8.onnx"
    info = ort_quant.quantize(m.file(role, "onnx"), m.root / rel, ctx.art, m.role(role), keep, ctx.req.range_method)
    return file_entry(m.root, rel), info


def _openvino(ctx: QuantContext, keep: list[str]) -> tuple[dict, dict]:
    """OpenVINO NNCF post-training quantization (openvino_quant.py)."""
    from edgegen.calibration import openvino_quant
    m, role = ctx.m, ctx.role
    rel = f"openvino/{role}.int8.xml"
    info = openvino_quant.quantize(m.file(role, "openvino"), m.root / rel, ctx.art.calib, m.role(role), keep)
    entry = file_entry(m.root, rel)
    entry["companions"] = [file_entry(m.root, f"openvino/{role}.int8.bin")]
    return entry, info


def _executorch(ctx: QuantContext, keep: list[str]) -> tuple[dict, dict]:
    """ExecuTorch XNNPACK int8 .pte from XNNPACK's PT2E quantizer (executorch_quant.py)."""
    from edgegen.calibration import executorch_quant
    from edgegen.runtimes.backends import create_backend
    module = create_backend("torch", ctx.m, ctx.role).module.eval()  # rebuilt from the bundle's torch weights
    return executorch_quant.quantize(module, ctx, keep)


def _tensorrt(ctx: QuantContext) -> dict:
    """The TensorRT calibration cache from the artifact; the int8 engine is built where it runs."""
    from edgegen.calibration import tensorrt_cache
    from edgegen.export.onnx_data import load_graph
    from edgegen.runtimes.backends.tensorrt_engine import tensorrt_reason
    m, role = ctx.m, ctx.role
    keep = ctx.report["formats"].get("onnx", {}).get("kept_float", [])
    outs = {n.name: list(n.output) for n in load_graph(m.file(role, "onnx")).graph.node}
    skip = _conditioning_tensors(m, role) + [o for k in keep for o in outs.get(k, [])]
    check = tensorrt_cache.write(m.root / "calibration" / "tensorrt.cache", ctx.art, skip, ctx.req.range_method)
    ctx.names["tensorrt_cache"] = "tensorrt.cache"
    files = m.formats(role)
    if "fp32" in files.get("tensorrt", {}):  # the engine builder reads the cache at build time
        entry = copy.deepcopy(files["tensorrt"]["fp32"])
        entry["calibration_cache"] = "calibration/tensorrt.cache"
        m.set_file(role, "tensorrt", "int8", entry)
    reason = tensorrt_reason()
    return {"cache": "calibration/tensorrt.cache", "check": check, "skipped_tensors": len(skip),
            "engine": f"not built here: {reason}" if reason else "built on first load by the tensorrt backend"}


def _coreml(ctx: QuantContext) -> dict:
    """Core ML weight-compressed (int8, palettized) and activation-quantized packages."""
    from edgegen.calibration import coreml_quant
    m, role, req = ctx.m, ctx.role, ctx.req
    batches = req.coreml_batches or tuple(int(b) for b in m.formats(role).get("coreml", {}).get("fp16", {})
                                          .get("static_batches", {"1": None})) or (1,)
    for v in coreml_quant.VARIANTS + ("w8a8",):
        shutil.rmtree(m.root / "coreml" / role / v, ignore_errors=True)
    files, checks = coreml_quant.write(m, role, m.root, ctx.calib, tuple(sorted(batches)), req.progress)
    m.data["roles"][role]["files"].setdefault("coreml", {}).update(files)
    return {"checks": checks, "prediction": coreml_quant.activation_reason() or "available (macOS)"}


def _conditioning_tensors(m: Manifest, role: str) -> list[str]:
    """ONNX tensors of the time/label embedding path, kept in float (quantizing t * freqs wrecks sampling)."""
    from edgegen.calibration.graph import conditioning_nodes
    from edgegen.export.onnx_data import load_graph
    model = load_graph(m.file(role, "onnx"))
    cond = set(conditioning_nodes(model, m.role(role)))
    meta = m.role(role).meta or {}
    return [o for n in model.graph.node if n.name in cond for o in n.output] + \
        [v for v in (meta.get("time_input"),) if v]


QUANTIZERS = {
    "onnx": Quantizer("onnx", backend="onnxruntime", quantize=_ort),
    "openvino": Quantizer("openvino", backend="openvino", quantize=_openvino),
    "executorch": Quantizer("executorch", backend="executorch", quantize=_executorch),
    "tensorrt": Quantizer("tensorrt", write=_tensorrt),
    "coreml": Quantizer("coreml", write=_coreml),
}
