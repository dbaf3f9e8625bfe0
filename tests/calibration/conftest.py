"""Fixtures of the calibration tests: a private copy of the tiny bundle, calibrated once."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FAST_GATE = dict(n=20, drift_n=4, speed_batch=4, speed_calls=2, batch_size=20)


def snapshot(folder: Path) -> dict:
    """Every file of a folder -> its bytes (to check a bundle is left as it was)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    return out


@pytest.fixture(scope="session")
def calibrated(tiny_bundle, tmp_path_factory, evaluator, evaluator_cache):
    """The tiny bundle calibrated for onnx, openvino and tensorrt (the tiny model's samples are
    noise, so the budget only bounds the drift loosely) and its report."""
    import os

    from edgegen.calibration.calibrate import CalibrateRequest, calibrate
    from edgegen.calibration.gate import Budget, GateSettings
    out = tmp_path_factory.mktemp("calibrated") / "ddpm-tiny"
    shutil.copytree(tiny_bundle, out)
    old = os.environ.get("EDGEGEN_CACHE")
    os.environ["EDGEGEN_CACHE"] = str(evaluator_cache)
    try:
        from edgegen.manifest import read_manifest
        from edgegen.train.evaluate import gate_scorer
        scorer, reason = gate_scorer(read_manifest(out))
        report = calibrate(CalibrateRequest(out, ["onnx", "openvino", "tensorrt"], calls=32,
                                            budget=Budget(None, None, 1.0), gate=GateSettings(**FAST_GATE),
                                            progress=False, scorer=scorer, no_scorer_reason=reason or ""))
    finally:
        if old is None:
            os.environ.pop("EDGEGEN_CACHE")
        else:
            os.environ["EDGEGEN_CACHE"] = old
    return out, report
