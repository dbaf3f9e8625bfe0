"""Gated float precisions (calibration/precision_gate.py) on the tiny DDPM: OpenVINO bf16 (the fp32 IR
with a bf16 precision hint), ONNX Runtime fp16 (a converted model), each against fp32 with the int8 gate."""
import json

import numpy as np
import onnx
import pytest

from edgegen.calibration.gate import Budget, GateSettings
from edgegen.calibration.precision_gate import BUDGETS, PrecisionRequest, add_precision
from edgegen.errors import EdgegenError
from edgegen.manifest import read_manifest
from edgegen.runtimes.api import open_pipeline

from .conftest import FAST_GATE, snapshot

LOOSE = Budget(None, None, 1.0)  # the tiny model's samples are noise: quality cannot gate it, drift bounds it


@pytest.fixture(scope="module")
def bf16_fp16(tiny_bundle, tmp_path_factory, evaluator, evaluator_cache):
    import os
    import shutil

    from edgegen.train.evaluate import gate_scorer
    out = tmp_path_factory.mktemp("float") / "ddpm-tiny"
    shutil.copytree(tiny_bundle, out)
    old = os.environ.get("EDGEGEN_CACHE")
    os.environ["EDGEGEN_CACHE"] = str(evaluator_cache)
    try:
        scorer, reason = gate_scorer(read_manifest(out))
        # bf16 with the quality scorer, fp16 with drift only (keeps the test short)
        reports = {p: add_precision(PrecisionRequest(out, p, formats=fmts, budget=LOOSE, gate=GateSettings(**FAST_GATE),
                                                     progress=False, scorer=sc, no_scorer_reason=reason or "drift only"))
                   for p, fmts, sc in (("bf16", ["openvino"], scorer), ("fp16", ["onnx"], None))}
    finally:
        if old is None:
            os.environ.pop("EDGEGEN_CACHE")
        else:
            os.environ["EDGEGEN_CACHE"] = old
    return out, reports


def test_bf16_openvino_is_a_gated_bundle_precision(bf16_fp16):
    pytest.importorskip("openvino")
    bundle, reports = bf16_fp16
    m = read_manifest(bundle, verify=True)
    entry = m.formats("denoiser")["openvino"]["bf16"]
    assert entry["inference_precision"] == "bf16" and entry["gate"]["passed"]
    r = reports["bf16"]["formats"]["openvino"]
    assert r["passed"] and {"fp32", "bf16", "drop_points"} <= set(r["accuracy"]) and r["fid"]["n"] == FAST_GATE["n"]
    assert r["speed"]["bf16_ms_per_call"] > 0
    report = json.loads((bundle / "calibration/precision-bf16.json").read_text())
    assert report["formats"]["openvino"]["drift"] == r["drift"]
    pipe = open_pipeline(bundle, "openvino", "bf16")
    x = pipe.sample(4, steps=5)
    ran = pipe.backend.compiled_precisions()
    f32 = open_pipeline(bundle, "openvino").sample(4, steps=5)
    if ran["ran"] == "bf16":  # a CPU with bf16 (AVX512-BF16, AMX): really reduced precision, and close
        assert 1e-6 < np.abs(x - f32).max() and r["drift"]["mean_abs"] > 0
        assert ran["detail"]["layers_by_runtime_precision"].get("bf16", 0) > 0
    assert np.abs(x - f32).mean() < 0.1


def test_fp16_onnx_has_half_weights_and_float_io(bf16_fp16):
    bundle, reports = bf16_fp16
    m = read_manifest(bundle, verify=True)
    model = onnx.load(str(m.file("denoiser", "onnx", "fp16")))
    types = {i.data_type for i in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    r = reports["fp16"]["formats"]["onnx"]
    assert r["passed"] and 0 < r["drift"]["mean_abs"] < 0.05
    # the bf16 variant written before is still there: precisions accumulate
    assert "bf16" in m.formats("denoiser")["openvino"]


def test_onnxruntime_bf16_is_refused_with_the_reason(tiny_bundle):
    with pytest.raises(EdgegenError, match="ONNX Runtime has no bf16"):
        add_precision(PrecisionRequest(tiny_bundle, "bf16", formats=["onnx"], progress=False))
    with pytest.raises(EdgegenError, match="unknown float precision 'int4'"):
        add_precision(PrecisionRequest(tiny_bundle, "int4", progress=False))


def test_over_budget_leaves_the_bundle_unchanged(bundle_copy):
    pytest.importorskip("openvino")
    before = snapshot(bundle_copy)
    with pytest.raises(EdgegenError, match="over its quality budget.*the bundle is unchanged"):
        add_precision(PrecisionRequest(bundle_copy, "fp16", formats=["onnx"], budget=Budget(None, None, 1e-12),
                                       gate=GateSettings(**FAST_GATE), progress=False))
    assert snapshot(bundle_copy) == before


def test_budgets_are_the_frontier_budget():
    for b in BUDGETS.values():
        assert b.max_fid_rise == 0.10 and b.max_accuracy_drop_points == 1.0


def test_cli_precision_flag_refuses_in_one_line(tiny_bundle, capsys):
    from edgegen.cli import main
    assert main(["calibrate", str(tiny_bundle), "--precision", "bf16", "--formats", "onnx", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "ONNX Runtime has no bf16" in err and "\n" not in err
    assert main(["calibrate", str(tiny_bundle), "--precision", "int4", "--quiet"]) == 2
