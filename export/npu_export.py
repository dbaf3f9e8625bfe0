"""NPU-ready variants: static-shape ONNX (ONNX Runtime's QNN execution provider on Snapdragon)
and static-shape OpenVINO IR (OpenVINO's NPU device on Intel Core Ultra), one per batch size.

Constraints (documented in the README, checked here for every file):
- no dynamic dimension anywhere in the graph's inputs and outputs, and none left inside after
  shape inference (NPU compilers plan memory ahead of time);
- every node of the static ONNX checked against the QNN EP op list (npu_ops.py); an op off
  the list is a warning in the report (it runs on the CPU EP fallback), not a failure;
- fp32 at export; ``edgegen calibrate`` adds the static QDQ int8 variants (``write_int8``) when
  the bundle has an npu target, checked the same way against the dynamic int8 model;
- roles with dims that vary per call (a KV cache) have no static variant (targets.static_reason).
The files are also run here on the CPU (ONNX Runtime, OpenVINO CPU) against PyTorch at their
static batch, so a broken fixed-shape rewrite fails the export. Partitioning on the NPU itself
(QNN EP node assignment, ``Core.query_model(model, "NPU")``) needs that hardware.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from edgegen.export.npu_ops import INTEL_NPU_NOTE, qnn_check
from edgegen.export.onnx_data import data_files, load_graph, save_graph
from edgegen.export.targets import TargetContext, static_reason, static_shapes, tree_entry

BOUND = 1e-4  # the parity gate's single-call bound (fp32)


def fix_shapes(src: Path, dst: Path, spec, batch: int) -> list[str]:
    """Write ``src`` with every dim fixed for ``batch``; returns the dynamic dims still inside.
    External weights (a network over 2 GB) stay in their data file, copied beside ``dst`` (onnx_data)."""
    model = load_graph(src)
    ins = {k: list(v) for k, v in static_shapes(spec, batch).items()}
    outs = {t.name: list(t.concrete(batch)) for t in spec.outputs}
    _set_dims(model.graph.input, ins)
    _set_dims(model.graph.output, outs)
    del model.graph.value_info[:]  # stale symbolic shapes; re-inferred below
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    if fold_shape_nodes(model):
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    save_graph(model, dst, src)  # checked by path: the checker reads external data from beside the file
    left = []
    for vi in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                left.append(f"{vi.name}:{d.dim_param or '?'}")
    return left


def _set_dims(values, dims: dict) -> None:
    """Fix the dims of graph inputs/outputs (onnx.tools.update_model_dims without its in-memory checker
    run, which cannot read external data; fix_shapes checks the written file instead)."""
    for v in values:
        for j, (d, want) in enumerate(zip(v.type.tensor_type.shape.dim, dims[v.name])):
            if d.HasField("dim_value") and d.dim_value != want:
                raise ValueError(f"{v.name} axis {j} is {d.dim_value}, cannot fix it to {want}")
            d.dim_value = int(want)


def fold_shape_nodes(model) -> int:
    """Replace every ``Shape`` node whose input has a fully static shape by an int64 initializer
    (the QNN EP has no Shape op; with fixed dims the value is known). Returns how many."""
    from onnx import numpy_helper
    shapes = {}
    for vi in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    keep, folded = [], 0
    for node in model.graph.node:
        if node.op_type == "Shape" and node.domain in ("", "ai.onnx") and node.input[0] in shapes:
            attrs = {a.name: a.i for a in node.attribute}
            full = shapes[node.input[0]]
            value = np.array(full[attrs.get("start", 0):attrs.get("end", len(full))], dtype=np.int64)
            model.graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
            folded += 1
        else:
            keep.append(node)
    if folded:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return folded


def _ort_out(path: Path, spec, inputs) -> np.ndarray:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(
        [spec.outputs[0].name], inputs)[0]


def _ops_summary(ops: dict) -> str:
    bad = ops["unsupported"]
    return (f"{ops['nodes']} nodes, {len(ops['ops'])} op types, "
            + (f"WARNING not in the QNN EP list (CPU EP fallback): {', '.join(bad)}" if bad else "all in the QNN EP list"))


def _torch_out(module, spec, inputs) -> np.ndarray:
    with torch.no_grad():
        out = module(*[torch.from_numpy(inputs[t.name]) for t in spec.inputs])
    return (out[0] if isinstance(out, (tuple, list)) else out).numpy()


def write(ctx: TargetContext) -> tuple[dict, dict]:
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
        got_onnx = _ort_out(ctx.root / onnx_rel, ctx.spec, inputs)
        ops = qnn_check(load_graph(ctx.root / onnx_rel))
        compiled = core.compile_model(str(ctx.root / ir_rel), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        got_ir = compiled(inputs)[compiled.output(0)]
        err_onnx = float(np.max(np.abs(got_onnx.astype(np.float64) - want)))
        err_ir = float(np.max(np.abs(got_ir.astype(np.float64) - want)))
        ok = not left and not model.is_dynamic() and err_onnx <= BOUND and err_ir <= BOUND
        results.append({"batch": batch, "dynamic_dims_left": left, "ir_is_dynamic": bool(model.is_dynamic()),
                        "onnx_cpu_max_abs": err_onnx, "openvino_cpu_max_abs": err_ir, "qnn_ops": ops,
                        "passed": ok})
        onnx_files[str(batch)], ir_files[str(batch)] = onnx_rel, ir_rel
    first = str(ctx.recipe.static_batches[0])
    files = {"fp32": tree_entry(
        ctx.root, onnx_files[first], [*onnx_files.values(), *ir_files.values(),
                                      *(p.replace(".xml", ".bin") for p in ir_files.values()),
                                      *_data_rels(ctx.root, onnx_files.values())],
        static_batches={"onnx": onnx_files, "openvino": ir_files},
        requires={"onnx": "onnxruntime with QNNExecutionProvider (Snapdragon HTP)",
                  "openvino": "OpenVINO with the NPU device (Intel Core Ultra)"},
        qnn_ops=_entry_ops(results), openvino_npu_ops=INTEL_NPU_NOTE)}
    passed = all(r["passed"] for r in results)
    summary = "; ".join(f"b{r['batch']}: static, ORT CPU {r['onnx_cpu_max_abs']:.1e}, "
                        f"OpenVINO CPU {r['openvino_cpu_max_abs']:.1e}" for r in results)
    summary += f"; QNN ops: {_ops_summary(results[0]['qnn_ops'])}"
    return files, {"fp32": {"check": "static-shape", "passed": passed, "variants": results, "summary": summary,
                            "qnn_ops": results[0]["qnn_ops"], "openvino_npu_ops": INTEL_NPU_NOTE}}


def _data_rels(root: Path, rels) -> list[str]:
    """The external data files the static variants name (one shared copy per folder), bundle-relative."""
    return sorted({p.relative_to(root).as_posix() for rel in rels for p in data_files(root / rel)})


def _entry_ops(results: list[dict]) -> dict:
    """What the manifest keeps of the op check: op types and the unsupported ones (all batches)."""
    ops = sorted({o for r in results for o in r["qnn_ops"]["ops"]})
    bad = sorted({o for r in results for o in r["qnn_ops"]["unsupported"]})
    return {"source": results[0]["qnn_ops"]["source"], "ops": ops, "unsupported": bad}


def write_int8(m, role: str, seed: int = 0) -> tuple[dict, dict] | None:
    """The static-shape QDQ variants of the bundle's ``onnx/int8`` model, one per batch of the
    fp32 npu variant: no dynamic dim left, QNN op check, each run on the CPU EP against the
    dynamic int8 model. Returns (manifest entry, check) or None when there is nothing to write."""
    from edgegen.export.example_inputs import example_inputs
    files = m.formats(role)
    if "fp32" not in files.get("npu", {}) or "int8" not in files.get("onnx", {}):
        return None
    spec, src = m.role(role), m.file(role, "onnx", "int8")
    batches = sorted(int(b) for b in files["npu"]["fp32"]["static_batches"]["onnx"])
    onnx_files, results = {}, []
    for batch in batches:
        rel = f"npu/{role}-b{batch}.int8.onnx"
        (m.root / rel).parent.mkdir(parents=True, exist_ok=True)
        left = fix_shapes(src, m.root / rel, spec, batch)
        inputs = example_inputs(spec, batch, seed, m.num_classes)
        err = float(np.max(np.abs(_ort_out(m.root / rel, spec, inputs).astype(np.float64)
                                  - _ort_out(src, spec, inputs))))
        ops = qnn_check(load_graph(m.root / rel))
        results.append({"batch": batch, "dynamic_dims_left": left, "onnx_cpu_vs_dynamic_int8_max_abs": err,
                        "qnn_ops": ops, "passed": not left and err <= BOUND})
        onnx_files[str(batch)] = rel
    entry = tree_entry(m.root, onnx_files[str(batches[0])], [*onnx_files.values(), *_data_rels(m.root, onnx_files.values())],
                       static_batches={"onnx": onnx_files}, quantization="QDQ (from onnx/int8)",
                       requires={"onnx": "onnxruntime with QNNExecutionProvider (Snapdragon HTP)"},
                       qnn_ops=_entry_ops(results))
    summary = "; ".join(f"b{r['batch']}: static, ORT CPU vs dynamic int8 {r['onnx_cpu_vs_dynamic_int8_max_abs']:.1e}"
                        for r in results) + f"; QNN ops: {_ops_summary(results[0]['qnn_ops'])}"
    return entry, {"check": "static-shape", "passed": all(r["passed"] for r in results), "variants": results,
                   "summary": summary, "qnn_ops": results[0]["qnn_ops"]}
