"""A network over 2 GB keeps its ONNX weights in ``<role>.onnx.data`` beside the model
(export/onnx_export.py). The static-shape targets (npu, tensorrt) and calibration copy, rewrite or run
``onnx/<role>.onnx``: they must take that file along (export/onnx_data.py), and every manifest entry that
needs it lists it as a sha256-checked companion.

Forced on the tiny DDPM by lowering ``onnx_export.EXTERNAL_DATA_BYTES`` (as
tests/export/test_module_import.py does): protobuf's 2 GB limit itself is not reached here, the file
handling is what is checked."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("openvino")

from edgegen.errors import EdgegenError  # noqa: E402
from edgegen.export import onnx_export  # noqa: E402
from edgegen.export.onnx_data import data_files  # noqa: E402
from edgegen.export.recipe import ExportRecipe  # noqa: E402
from edgegen.manifest import read_manifest  # noqa: E402

BATCHES = (1, 2)
ROLE = "denoiser"


def _export(run, formats, out):
    from edgegen.train.runs import export_run
    mp = pytest.MonkeyPatch()
    mp.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 1024)  # the tiny DDPM's weights go to external data
    try:
        verify = export_run(run, formats, out, progress=False, recipe=ExportRecipe(static_batches=BATCHES))
    finally:
        mp.undo()
    return verify


@pytest.fixture(scope="module")
def ext_bundle(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("extdata") / "ddpm-tiny"
    return out, _export(tiny_run, ["onnx", "tensorrt", "npu"], out)


def _companions(entry) -> set[str]:
    return {c["path"] for c in entry.get("companions", [])}


def test_onnx_weights_are_external(ext_bundle):
    out, verify = ext_bundle
    m = read_manifest(out)
    assert verify["passed"]
    assert data_files(out / f"onnx/{ROLE}.onnx") == [out / f"onnx/{ROLE}.onnx.data"]
    assert f"onnx/{ROLE}.onnx.data" in _companions(m.formats(ROLE)["onnx"]["fp32"])


def test_npu_static_variants_keep_and_list_the_data(ext_bundle):
    from edgegen.export.onnx_data import load_graph
    out, verify = ext_bundle
    m = read_manifest(out)  # every sha256, the npu data copy included
    entry = m.formats(ROLE)["npu"]["fp32"]
    assert f"npu/{ROLE}.onnx.data" in _companions(entry)
    for b in BATCHES:
        rel = entry["static_batches"]["onnx"][str(b)]
        assert data_files(out / rel) == [out / f"npu/{ROLE}.onnx.data"]  # one copy shared by the batches
        assert load_graph(out / rel).graph.input[0].type.tensor_type.shape.dim[0].dim_value == b
    check = verify["results"][ROLE]["npu"]["fp32"]  # each variant run on ORT and OpenVINO CPU vs PyTorch
    assert check["passed"] and [v["batch"] for v in check["variants"]] == list(BATCHES)
    assert all(v["dynamic_dims_left"] == [] and v["onnx_cpu_max_abs"] <= 1e-4 for v in check["variants"])


def test_changed_npu_data_is_refused(ext_bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(ext_bundle[0], out)
    data = out / f"npu/{ROLE}.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(EdgegenError, match="sha256"):
        read_manifest(out)


def test_tensorrt_entry_lists_the_data(ext_bundle):
    out, verify = ext_bundle
    m = read_manifest(out)
    for precision, entry in m.formats(ROLE)["tensorrt"].items():
        assert entry["path"] == f"onnx/{ROLE}.onnx"
        assert f"onnx/{ROLE}.onnx.data" in _companions(entry), precision
    assert verify["results"][ROLE]["tensorrt"]["fp32"]["passed"]  # the compatibility report read the graph


def test_tensorrt_without_onnx_format_copies_the_data(tiny_run, tmp_path):
    import onnxruntime as ort

    from edgegen.export.example_inputs import example_inputs
    out = tmp_path / "trt-only"
    _export(tiny_run, ["tensorrt"], out)
    m = read_manifest(out)
    entry = m.formats(ROLE)["tensorrt"]["fp32"]
    assert entry["path"] == f"tensorrt/{ROLE}.onnx" and f"tensorrt/{ROLE}.onnx.data" in _companions(entry)
    # the copied model loads with its weights (what the engine builder parses)
    spec = m.role(ROLE)
    sess = ort.InferenceSession(str(out / entry["path"]), providers=["CPUExecutionProvider"])
    got = sess.run(None, example_inputs(spec, 2, 0, m.num_classes))[0]
    assert got.shape[0] == 2 and np.isfinite(got).all() and np.abs(got).max() > 0


def test_calibrate_reads_external_data(ext_bundle, tmp_path):
    from edgegen.calibration.calibrate import CalibrateRequest, calibrate
    from edgegen.calibration.gate import Budget, GateSettings
    out = tmp_path / "b"
    shutil.copytree(ext_bundle[0], out)
    report = calibrate(CalibrateRequest(out, ["onnx", "tensorrt"], calls=16, budget=Budget(None, None, 1.0),
                                        gate=GateSettings(n=20, drift_n=4, speed_batch=4, speed_calls=2,
                                                          batch_size=20), progress=False))
    m = read_manifest(out)  # every sha256
    art = json.loads((out / "calibration/artifact.json").read_text())
    assert art["provenance"]["onnx_data_sha256"] == {f"{ROLE}.onnx.data": m.formats(ROLE)["onnx"]["fp32"]
                                                     ["companions"][0]["sha256"]}
    assert art["provenance"]["tensors"] > 10  # statistics of every float tensor, the weights read from the data
    assert report["formats"]["onnx"]["passed"] and "naive_baseline" in report
    assert report["formats"]["npu"]["checks"]["int8"]["passed"]  # static QDQ variants of onnx/int8
    assert "int8" in m.formats(ROLE)["tensorrt"]
