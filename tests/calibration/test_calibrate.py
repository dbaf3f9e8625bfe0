"""edgegen calibrate end to end on the tiny bundle: int8 models, manifest, report, bad input."""
import json

import numpy as np
import onnx
import pytest

from edgegen.calibration.calibrate import CalibrateRequest, calibrate, parse_formats
from edgegen.calibration.gate import Budget, GateSettings
from edgegen.cli import main
from edgegen.errors import EdgegenError
from edgegen.manifest import read_manifest
from edgegen.runtimes.api import open_pipeline

from .conftest import FAST_GATE, snapshot


def test_int8_models_are_in_the_manifest_with_sha256(calibrated):
    bundle, report = calibrated
    m = read_manifest(bundle, verify=True)
    files = m.formats("denoiser")
    assert {"fp32", "int8"} <= set(files["onnx"]) and {"fp32", "int8"} <= set(files["openvino"])
    cal = m.data["calibration"]
    for key in ("artifact", "histograms", "inputs", "report", "tensorrt_cache"):
        assert (bundle / cal[key]).is_file()
    assert cal["provenance"]["method"] == "trajectory" and cal["provenance"]["calls"] == 32
    assert json.loads((bundle / cal["report"]).read_text()) == json.loads(json.dumps(report))


def test_report_holds_drift_fid_accuracy_speed_float_layers_and_naive_baseline(calibrated):
    _, report = calibrated
    for fmt in ("onnx", "openvino"):
        r = report["formats"][fmt]
        assert r["drift"]["mean_abs"] >= 0 and r["fid"]["n"] == FAST_GATE["n"]
        assert {"fp32", "int8", "drop_points"} <= set(r["accuracy"])
        assert r["speed"]["fp32_ms_per_call"] > 0 and r["speed"]["int8_ms_per_call"] > 0
        assert r["kept_float"] == [] and r["passed"]
    assert report["kept_float"] == {"onnx": [], "openvino": []}
    naive = report["naive_baseline"]
    assert naive["calibration"]["method"] == "naive" and "fid" in naive and "drift" in naive
    assert report["formats"]["tensorrt"]["check"]["passed"]


def test_ort_model_is_qdq_with_the_conditioning_path_float(calibrated):
    bundle, _ = calibrated
    m = read_manifest(bundle)
    q = onnx.load(str(m.file("denoiser", "onnx", "int8")))
    ops = [n.op_type for n in q.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    dq_out = {o for n in q.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for n in q.graph.node:
        if n.op_type == "Gemm":  # the time-embedding MLP and projections: float weights and inputs
            assert not set(n.input) & dq_out, n.name
        if n.op_type == "Conv":
            assert n.input[1] in dq_out  # per-channel int8 weights
    # per-channel: the weight scales are vectors
    inits = {i.name: i for i in q.graph.initializer}
    w_scales = [inits[n.input[1]] for n in q.graph.node if n.op_type == "DequantizeLinear"
                and n.input[0].endswith("_quantized") and n.input[1] in inits]
    assert any(len(s.dims) == 1 and s.dims[0] > 1 for s in w_scales)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_sample_int8(calibrated, backend, tmp_path):
    bundle, _ = calibrated
    out = tmp_path / "s.png"
    assert main(["sample", str(bundle), "--backend", backend, "--precision", "int8", "--n", "4", "--steps", "10",
                 "--out", str(out), "--quiet"]) == 0
    a = np.load(out.with_suffix(".npy"))
    b = open_pipeline(bundle, backend).sample(4, steps=10)
    assert a.shape == b.shape and np.isfinite(a).all()
    assert np.abs(a - b).mean() < 0.5  # int8 follows fp32 from the same noise


def _request(bundle, **kw):
    base = dict(formats=["onnx"], calls=16, budget=Budget(None, None, 1.0), gate=GateSettings(**FAST_GATE),
                naive_baseline=False, progress=False)
    from edgegen.manifest import read_manifest
    from edgegen.train.evaluate import gate_scorer
    base["scorer"], base["no_scorer_reason"] = gate_scorer(read_manifest(bundle, verify=False))
    base.update(kw)
    return CalibrateRequest(bundle, **base)


def test_empty_calibration_set_leaves_the_bundle(bundle_copy, capsys):
    before = snapshot(bundle_copy)
    assert main(["calibrate", str(bundle_copy), "--calls", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgegen: error: the calibration set is empty") and "\n" not in err
    assert snapshot(bundle_copy) == before


def test_bundle_without_fp32_model_is_an_error(bundle_copy):
    data = json.loads((bundle_copy / "manifest.json").read_text())
    del data["roles"]["denoiser"]["files"]["onnx"]
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    (bundle_copy / "onnx/denoiser.onnx").unlink()
    before = snapshot(bundle_copy)
    with pytest.raises(EdgegenError, match="no fp32 ONNX model"):
        calibrate(_request(bundle_copy))
    assert snapshot(bundle_copy) == before


def test_budget_that_cannot_be_met_leaves_the_bundle(bundle_copy, evaluator, evaluator_cache, monkeypatch):
    monkeypatch.setenv("EDGEGEN_CACHE", str(evaluator_cache))
    before = snapshot(bundle_copy)
    with pytest.raises(EdgegenError, match="quality budget not met .* the bundle is unchanged"):
        calibrate(_request(bundle_copy, budget=Budget(None, None, 0.0)))  # zero drift: impossible
    assert snapshot(bundle_copy) == before
    failed = bundle_copy.parent / "bundle.calibration-failed.json"
    rep = json.loads(failed.read_text())
    attempts = rep["formats"]["onnx"]["attempts"]
    assert len(attempts) > 2 and attempts[-1]["kept_float"]  # the mixed-precision search ran
    assert rep["sensitivity"][0]["rel_mse"] >= rep["sensitivity"][-1]["rel_mse"]


def test_sensitivity_schedule():
    from edgegen.calibration.sensitivity import schedule
    assert schedule(5) == [1, 2, 4] and schedule(20) == [1, 2, 4, 8, 16, 19] and schedule(1) == []


def test_unknown_format_is_an_error():
    with pytest.raises(EdgegenError, match="unknown calibration format 'npu'"):
        parse_formats("onnx,npu")


def test_native_runs_the_int8_ir_like_python_openvino(calibrated):
    from edgegen.runtimes.backends import backend_class
    reason = backend_class("native").unavailable()
    if reason:
        pytest.skip(reason)
    bundle, _ = calibrated
    py = open_pipeline(bundle, "openvino", "int8").sample(4, seed=1, steps=10)
    native = open_pipeline(bundle, "native", "int8").sample(4, seed=1, steps=10)
    assert np.abs(py - native).max() <= 1e-4
