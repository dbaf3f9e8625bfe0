"""NPU-ready variants: static-shape ONNX (ONNX Runtime's QNN execution provider on Snapdragon)
and static-shape OpenVINO IR (OpenVINO's NPU device on Intel Core Ultra), one per batch size.

Constraints (documented in the README, checked here for every file):
- no dynamic dimension anywhere in the graph's inputs and outputs, and none left inside after
  shape inference (NPU compilers plan memory ahead of time);
- fp32 here; QDQ int8 variants come from the calibration stage when it exists;
- roles with dims that vary per call (a KV cache) have no static variant (targets.static_reason).
The files are also run here on the CPU (ONNX Runtime, OpenVINO CPU) against PyTorch at their
static batch, so a broken fixed-shape rewrite fails the export. The op-support check against
the NPU itself (QNN EP partitioning, ``Core.query_model(model, "NPU")``) needs that hardware.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from edgegen.export.targets import TargetContext, static_reason, static_shapes, tree_entry

BOUND = 1e-4  # the parity gate's single-call bound (fp32)


def fix_shapes(src: Path, dst: Path, spec, batch: int) -> list[str]:
    """Write ``src`` with every dim fixed for ``batch``; returns the dynamic dims still inside."""
    from onnx.tools.update_model_dims import update_inputs_outputs_dims
    model = onnx.load(str(src))
    ins = {k: list(v) for k, v in static_shapes(spec, batch).items()}
    outs = {t.name: list(t.concrete(batch)) for t in spec.outputs}
    model = update_inputs_outputs_dims(model, ins, outs)
    del model.graph.value_info[:]  # stale symbolic shapes; re-inferred below
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    left = []
    for vi in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                left.append(f"{vi.name}:{d.dim_param or '?'}")
    return left


def _torch_out(module, spec, inputs) -> np.ndarray:
    with torch.no_grad():
        out = module(*[torch.from_numpy(inputs[t.name]) for t in spec.inputs])
    return (out[0] if isinstance(out, (tuple, list)) else out).numpy()


def write(ctx: TargetContext) -> tuple[dict, dict]:
    import onnxruntime as ort
    import openvino as ov
    reason = static_reason(ctx.spec)
    if reason:
        return {}, {"skipped": {"passed": True, "skipped": True, "summary": f"skipped: {reason}"}}
    src = ctx.onnx()
    core = ov.Core()
    onnx_files, ir_files, results = {}, {}, []
    for batch in ctx.recipe.static_batches:
        onnx_rel, ir_rel = f"npu/{ctx.role}-b{batch}.onnx", f"npu/{ctx.role}-b{batch}.xml"
        left = fix_shapes(src, ctx.path(onnx_rel), ctx.spec, batch)
        model = ov.convert_model(str(ctx.root / onnx_rel))
        ov.save_model(model, str(ctx.path(ir_rel)), compress_to_fp16=False)
        inputs = ctx.inputs(batch, 1)
        want = _torch_out(ctx.module, ctx.spec, inputs)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        got_onnx = ort.InferenceSession(str(ctx.root / onnx_rel), so, providers=["CPUExecutionProvider"]).run(
            [ctx.spec.outputs[0].name], inputs)[0]
        compiled = core.compile_model(str(ctx.root / ir_rel), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        got_ir = compiled(inputs)[compiled.output(0)]
        err_onnx = float(np.max(np.abs(got_onnx.astype(np.float64) - want)))
        err_ir = float(np.max(np.abs(got_ir.astype(np.float64) - want)))
        ok = not left and not model.is_dynamic() and err_onnx <= BOUND and err_ir <= BOUND
        results.append({"batch": batch, "dynamic_dims_left": left, "ir_is_dynamic": bool(model.is_dynamic()),
                        "onnx_cpu_max_abs": err_onnx, "openvino_cpu_max_abs": err_ir, "passed": ok})
        onnx_files[str(batch)], ir_files[str(batch)] = onnx_rel, ir_rel
    first = str(ctx.recipe.static_batches[0])
    files = {"fp32": tree_entry(
        ctx.root, onnx_files[first], [*onnx_files.values(), *ir_files.values(),
                                      *(p.replace(".xml", ".bin") for p in ir_files.values())],
        static_batches={"onnx": onnx_files, "openvino": ir_files},
        requires={"onnx": "onnxruntime with QNNExecutionProvider (Snapdragon HTP)",
                  "openvino": "OpenVINO with the NPU device (Intel Core Ultra)"})}
    passed = all(r["passed"] for r in results)
    summary = "; ".join(f"b{r['batch']}: static, ORT CPU {r['onnx_cpu_max_abs']:.1e}, "
                        f"OpenVINO CPU {r['openvino_cpu_max_abs']:.1e}" for r in results)
    return files, {"fp32": {"check": "static-shape", "passed": passed, "variants": results, "summary": summary}}
