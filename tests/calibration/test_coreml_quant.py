"""Core ML compressed packages: written and validated structurally; predictions need macOS."""
import platform

import pytest

pytest.importorskip("coremltools")

from edgegen.calibration import coreml_quant, record  # noqa: E402
from edgegen.runtimes.api import open_manifest, open_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def packages(tiny_bundle, tmp_path_factory):
    m = open_manifest(tiny_bundle)
    calib = record.record(open_pipeline(tiny_bundle), 16)
    out = tmp_path_factory.mktemp("coreml-int8")
    files, checks = coreml_quant.write(m, "denoiser", out, calib, (1,))
    return out, files, checks


def test_int8_and_palettized_packages_are_valid(packages):
    out, files, checks = packages
    assert set(files) >= {"int8", "palette6", "palette4"}
    for v in ("int8", "palette6", "palette4"):
        assert checks[v]["passed"], checks[v]["summary"]
        assert (out / files[v]["static_batches"]["1"]).is_dir()
        assert files[v]["sha256"] and files[v]["companions"]
    kinds = {v: checks[v]["packages"][0]["weights"]["kind"] for v in ("int8", "palette4")}
    assert "constexpr_affine_dequantize" in kinds["int8"] or "constexpr_blockwise_shift_scale" in kinds["int8"]
    assert "lut" in kinds["palette4"]


def test_activation_quantization_needs_macos(packages):
    _, _, checks = packages
    if platform.system() == "Darwin":  # pragma: no cover - macOS only
        assert checks["w8a8"]["passed"]
    else:
        assert checks["w8a8"]["skipped"] and "macOS" in checks["w8a8"]["summary"]


@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predictions run on macOS only: "
                    "the compressed packages are checked structurally here")
def test_compressed_package_predicts_close_to_fp32(packages, tiny_bundle):  # pragma: no cover - macOS only
    import numpy as np

    from edgegen.export.example_inputs import example_inputs
    out, files, _ = packages
    import coremltools as ct
    m = open_manifest(tiny_bundle)
    spec = m.role("denoiser")
    inputs = example_inputs(spec, 1, 0, m.num_classes)
    ref = open_pipeline(tiny_bundle, "onnxruntime").backend.run(inputs)["eps"]
    model = ct.models.MLModel(str(out / files["int8"]["static_batches"]["1"]))
    got = model.predict({k: v.astype(np.int32) if v.dtype == np.int64 else v for k, v in inputs.items()})["eps"]
    assert np.abs(got - ref).max() < 0.1
