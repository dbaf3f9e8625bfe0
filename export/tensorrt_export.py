"""TensorRT engines from the bundle's ONNX, through the TensorRT Python API.

The bundle carries what every machine shares: the ONNX source, the optimization profile
(from the export recipe) and the compatibility report (tensorrt_compat.py). Engines are
specific to a GPU and a TensorRT version, so they are built where they run - at export when
TensorRT and a GPU are present, else on first load - and cached under
``cache_dir()/tensorrt/<GPU>-trt<version>/`` keyed by the ONNX sha256, precision and profile.
fp32 and fp16 always; int8 when the bundle carries a TensorRT calibration cache
(``calibration.tensorrt_cache`` in the manifest, written by the calibration stage).
"""
from __future__ import annotations

import json

from edgegen.export.targets import TargetContext
from edgegen.paths import atomic_write_text
from edgegen.runtimes.backends.tensorrt_engine import build_engine, cached_engine  # noqa: F401 (re-exported)
from edgegen.runtimes.backends.tensorrt_engine import calibration_cache, tensorrt_reason  # noqa: F401

def write(ctx: TargetContext) -> tuple[dict, dict]:
    """The ONNX source, the profile and the compatibility report per role; engines where possible."""
    from edgegen.export.tensorrt_compat import profile_for, report

    from edgegen.manifest import file_entry
    from edgegen.export.onnx_data import copy_model, data_entries
    src_rel = f"onnx/{ctx.role}.onnx"
    if not (ctx.root / src_rel).exists():  # no onnx format in this bundle: keep the source beside
        src_rel = f"tensorrt/{ctx.role}.onnx"
        copy_model(ctx.onnx(), ctx.path(src_rel))  # with its external data (a network over 2 GB)
    profile = profile_for(ctx.spec, list(ctx.recipe.static_batches))
    rep = report(ctx.root / src_rel, profile)
    rep_rel = f"tensorrt/{ctx.role}.compat.json"
    atomic_write_text(ctx.path(rep_rel), json.dumps(rep, indent=1))
    calib = calibration_cache(ctx.manifest)
    precisions = [p for p in ctx.recipe.tensorrt_precisions if p != "int8"] + (["int8"] if calib else [])
    reason = tensorrt_reason()
    input_dims = {t.name: list(t.shape) for t in ctx.spec.inputs}
    files, checks = {}, {}
    data = data_entries(ctx.root, ctx.root / src_rel)  # the engine builder reads them with the model
    for precision in precisions:
        engine = f"not built here: {reason}" if reason else None
        if reason is None and rep["passed"]:
            path = cached_engine(ctx.root / src_rel, precision, profile, input_dims, ctx.recipe.tensorrt_workspace_mib,
                                 calib.read_bytes() if precision == "int8" else None)
            engine = f"built: {path}"
        entry = file_entry(ctx.root, src_rel)
        entry.update({"companions": [file_entry(ctx.root, rep_rel), *data], "source": "onnx", "profile": profile,
                      "input_dims": input_dims, "report": rep_rel, "min_tensorrt": rep["min_tensorrt"],
                      "workspace_mib": ctx.recipe.tensorrt_workspace_mib,
                      "requires": {"python": ["tensorrt", "torch (CUDA build)"], "device": "cuda",
                                   "gpu": "NVIDIA", "tensorrt": f">={rep['min_tensorrt']}"}})
        if precision == "int8":
            entry["calibration_cache"] = str(calib.relative_to(ctx.manifest.root))
        files[precision] = entry
        checks[precision] = {**{k: rep[k] for k in ("check", "passed", "unsupported", "restrictions", "min_tensorrt")},
                             "report": rep_rel, "engine": engine, "summary": rep["summary"]}
    return files, checks
