"""The TensorRT calibration cache: written from the artifact, read back structurally."""
import importlib.util
import struct

import pytest

from edgegen.calibration import artifact, record, tensorrt_cache
from edgegen.errors import EdgegenError
from edgegen.runtimes.api import open_pipeline


@pytest.fixture(scope="module")
def art(tiny_bundle):
    return artifact.build(tiny_bundle / "onnx/denoiser.onnx", record.record(open_pipeline(tiny_bundle), 20))


def test_cache_format(art, tmp_path):
    path = tmp_path / "trt.cache"
    check = tensorrt_cache.write(path, art, skip=["t"], version="10.8.0")
    lines = path.read_text().splitlines()
    assert lines[0] == "TRT-100800-EntropyCalibration2"
    scales = dict(line.split(": ") for line in lines[1:])
    assert "t" not in scales and "x" in scales
    s = struct.unpack("<f", struct.pack("<I", int(scales["x"], 16)))[0]
    assert s * 127 == pytest.approx(art.ranges["x"]["amax"], rel=1e-6)
    assert check["passed"] and check["tensors"] == len(lines) - 1


def test_version_numbers():
    assert tensorrt_cache.version_number("10.8.0") == 100800
    assert tensorrt_cache.version_number("8.6.1.6") == 8601
    assert tensorrt_cache.version_number("10.14.1") == 101401


def test_malformed_cache_is_rejected(tmp_path):
    p = tmp_path / "bad.cache"
    p.write_text("TRT-100800-MinMaxCalibration\nx: 3c000000\n")
    with pytest.raises(EdgegenError, match="not a TensorRT EntropyCalibration2 cache"):
        tensorrt_cache.validate(p)
    p.write_text("TRT-100800-EntropyCalibration2\nx 3c000000\n")
    with pytest.raises(EdgegenError, match="malformed"):
        tensorrt_cache.validate(p)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="TensorRT is not installed here (no NVIDIA GPU, no reachable wheel): the int8 engine "
                           "cannot be built from the cache on this machine")
def test_int8_engine_builds_from_the_cache(calibrated):  # pragma: no cover - needs TensorRT and a GPU
    from edgegen.export.tensorrt_export import build_engine, calibration_cache
    from edgegen.manifest import read_manifest
    bundle, _ = calibrated
    m = read_manifest(bundle)
    entry = m.formats("denoiser")["tensorrt"]["int8"] if "tensorrt" in m.formats("denoiser") else None
    if entry is None:
        pytest.skip("the tiny bundle has no tensorrt export")
    build_engine(m.root / entry["path"], "int8", entry["profile"], entry["input_dims"],
                 calibration_cache=calibration_cache(m).read_bytes())
