"""Calibration is generic over plan-sampled families: it records through the plan interpreter
hook and finds the conditioning path by data flow, so score SDE, flow matching and the GAN
generator (one call, no time input) calibrate with no family code."""
import pytest

from edgegen.calibration.calibrate import CalibrateRequest, calibrate
from edgegen.calibration.gate import Budget, GateSettings
from edgegen.manifest import read_manifest

from .conftest import FAST_GATE


@pytest.mark.parametrize("family", ["sde", "flow", "gan"])
def test_family_calibrates(family, tmp_path, evaluator, evaluator_cache, monkeypatch):
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    monkeypatch.setenv("EDGEGEN_CACHE", str(evaluator_cache))
    cfg = get_preset(family, "tiny")
    cfg.train.threads = 1
    run = train_run(family, cfg, tmp_path / "run", progress=False)
    bundle = tmp_path / "bundle"
    export_bundle(run, ["onnx"], bundle, progress=False)
    report = calibrate(CalibrateRequest(bundle, ["onnx", "tensorrt"], calls=16, budget=Budget(None, None, None),
                                        gate=GateSettings(**FAST_GATE), naive_baseline=False, progress=False))
    m = read_manifest(bundle, verify=True)
    role = m.sampling["role"]
    assert "int8" in m.formats(role)["onnx"]
    r = report["formats"]["onnx"]
    assert r["passed"] and r["drift"]["mean_abs"] >= 0 and r["quantization"]["quantized_layers"]
    assert report["calibration"]["steps_covered"] == min(16, report["calibration"]["plan_steps"])
    assert report["formats"]["tensorrt"]["check"]["passed"]
