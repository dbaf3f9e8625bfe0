"""The static-shape QDQ npu variants written from a calibrated bundle's onnx/int8 model."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx


def _add_npu_fp32(m, role, batches):
    """The fp32 npu entry export writes (static ONNX per batch), made from the bundle's fp32 ONNX."""
    from edgegen.export.npu_export import fix_shapes
    from edgegen.export.targets import tree_entry
    rels = {}
    for b in batches:
        rels[str(b)] = f"npu/{role}-b{b}.onnx"
        (m.root / "npu").mkdir(exist_ok=True)
        fix_shapes(m.file(role, "onnx"), m.root / rels[str(b)], m.role(role), b)
    m.data["roles"][role]["files"]["npu"] = {"fp32": tree_entry(m.root, rels[str(batches[0])], list(rels.values()),
                                                                  static_batches={"onnx": rels})}


def test_calibrate_hook_writes_static_qdq_variants(calibrated, tmp_path):
    from edgegen.calibration.calibrate import _npu_int8
    from edgegen.export.example_inputs import example_inputs
    from edgegen.manifest import MANIFEST, read_manifest
    from edgegen.runtimes.backends import create_backend
    out = tmp_path / "b"
    shutil.copytree(calibrated[0], out)
    m = read_manifest(out)
    report = {"formats": {}}
    _npu_int8(m, "denoiser", report)  # no npu target: nothing written
    assert "npu" not in report["formats"] and "npu" not in m.formats("denoiser")
    _add_npu_fp32(m, "denoiser", (1, 3))
    _npu_int8(m, "denoiser", report)
    check = report["formats"]["npu"]["checks"]["int8"]
    assert check["passed"] and [v["batch"] for v in check["variants"]] == [1, 3]
    for v in check["variants"]:
        assert v["dynamic_dims_left"] == [] and v["onnx_cpu_vs_dynamic_int8_max_abs"] <= 1e-4
        assert {"QuantizeLinear", "DequantizeLinear"} <= set(v["qnn_ops"]["ops"])
        assert v["qnn_ops"]["unsupported"] == []
    (out / MANIFEST).write_text(json.dumps(m.data, indent=1))
    m = read_manifest(out)  # every sha256, the int8 variants included
    entry = m.formats("denoiser")["npu"]["int8"]
    assert sorted(entry["static_batches"]["onnx"]) == ["1", "3"] and entry["qnn_ops"]["unsupported"] == []
    model = onnx.load(str(out / entry["static_batches"]["onnx"]["3"]))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    # what the QNN EP gets (int8, static, batch 5 -> 3 + 1 + 1), run on the CPU EP
    static = create_backend("onnxruntime", m, "denoiser", "int8", static=True)
    dynamic = create_backend("onnxruntime", m, "denoiser", "int8")
    inputs = example_inputs(m.role("denoiser"), 5, 2, m.num_classes)
    a, b = static.run(inputs)["eps"], dynamic.run(inputs)["eps"]
    assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-4
