"""ExecuTorch: .pte export (XNNPACK gated; Core ML and Vulkan structural; QNN refused), the
``executorch`` backend against onnxruntime, int8 through ``edgegen calibrate``, refusals.

Lowering the tiny DDPM UNet takes over a minute of CPU here (31 XNNPACK partitions, one per
stretch between GroupNorms, each run through the lowering passes), too slow for ``make test``;
like test_targets_aoti.py these tests use the flow family's moons MLP (the same generic code path:
roles from the manifest, no per-family code). benchmarks/executorch.md has the other families.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import shutil

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.manifest import read_manifest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("executorch") is None,
    reason="the Python package 'executorch' is not installed (pip install 'edgegen[executorch]')")


@pytest.fixture(scope="module")
def et_run(tmp_path_factory):
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    cfg = get_preset("flow", "tiny")
    cfg.data.source = "moons"
    cfg.train.threads = 1
    return train_run("flow", cfg, tmp_path_factory.mktemp("runs") / "flow-moons-tiny", progress=False)


@pytest.fixture(scope="module")
def et_bundle(et_run, tmp_path_factory):
    from edgegen.train.runs import export_run
    out = tmp_path_factory.mktemp("bundles") / "flow-et"
    verify = export_run(et_run, ["onnx", "executorch"], out, progress=False)
    return out, verify


def test_pte_passes_the_parity_gate(et_bundle):
    out, verify = et_bundle
    m = read_manifest(out, verify=True)
    role = m.sampling["role"]
    entry = m.formats(role)["executorch"]["fp32"]
    assert entry["path"] == f"executorch/{role}.pte" and entry["partitioner"] == "xnnpack"
    assert entry["dynamic"] and 1 <= entry["max_batch"] <= 64
    assert entry["requires"]["delegates"] == ["XnnpackBackend"]
    r = verify["results"][role]["executorch"]["fp32"]
    assert r["backend"] == "executorch" and r["passed"]
    assert r["single_call_max_abs"] <= 1e-4 and r["trajectory_max_abs"] <= 1e-3


def test_samples_equal_onnxruntime(et_bundle, tmp_path):
    from edgegen.runtimes.api import open_pipeline
    out, _ = et_bundle
    b = open_pipeline(out, "onnxruntime").sample(37, seed=3, batch_size=16)
    a = open_pipeline(out, "executorch").sample(37, seed=3, batch_size=16)  # odd sizes: dynamic batch
    assert np.max(np.abs(a - b)) <= 1e-4
    # a program planned for fewer rows than the batch: the backend runs it in chunks
    small = tmp_path / "b"
    shutil.copytree(out, small)
    data = json.loads((small / "manifest.json").read_text())
    role = data["pipeline"]["generator"]["role"]
    data["roles"][role]["files"]["executorch"]["fp32"]["max_batch"] = 5
    (small / "manifest.json").write_text(json.dumps(data))
    c = open_pipeline(small, "executorch").sample(37, seed=3, batch_size=16)
    assert np.max(np.abs(c - b)) <= 1e-4


def test_coreml_and_vulkan_programs_checked_structurally(et_bundle):
    from edgegen.export.executorch_export import program_summary
    from edgegen.runtimes.api import open_manifest
    from edgegen.runtimes.backends import create_backend
    out, verify = et_bundle
    m = open_manifest(out)
    role = m.sampling["role"]
    section = m.data["export"]["executorch"]["delegates"]
    for delegate, backend_id in (("coreml", "CoreMLBackend"), ("vulkan", "VulkanBackend")):
        if not section[delegate]["written"]:  # the partitioner does not import here: the reason is recorded
            assert section[delegate]["reason"]
            continue
        check = verify["results"][role]["executorch"][delegate]
        assert check["passed"] and check["check"] == "structural" and backend_id in check["delegates"]
        summary = program_summary((out / m.formats(role)["executorch"][delegate]["path"]).read_bytes())
        assert summary["delegates"] == [backend_id] and summary["inputs"] == len(m.role(role).inputs)
        with pytest.raises(EdgegenError, match=f"needs the {backend_id} delegate"):
            create_backend("executorch", m, role, delegate)


def test_qnn_is_refused_with_the_reason(et_bundle):
    from edgegen.export.executorch_export import partitioner
    out, _ = et_bundle
    m = read_manifest(out)
    assert "needs Qualcomm's SDK" in m.data["export"]["executorch"]["delegates"]["qnn"]["reason"]
    with pytest.raises(EdgegenError, match="needs Qualcomm's SDK"):
        partitioner("qnn")


class DataDependent:
    """A role torch.export cannot capture: its control flow depends on the input's values."""

    @staticmethod
    def module():
        import torch

        class Net(torch.nn.Module):
            def forward(self, x):
                return x * 2 if float(x.sum()) > 0 else x  # data-dependent Python branch

        return Net().eval()


def toy_context(tmp_path, module, shape: list, batches: tuple):
    """A one-role bundle being written, for a module that is not a family's."""
    from edgegen.export.recipe import ExportRecipe
    from edgegen.export.targets import TargetContext
    from edgegen.manifest import Manifest
    role = {"inputs": [{"name": "x", "shape": ["batch", *shape], "dtype": "float32"}],
            "outputs": [{"name": "y", "shape": ["batch", *shape], "dtype": "float32"}], "files": {}}
    m = Manifest(tmp_path, {"family": "toy", "data": {"shape": shape, "num_classes": 0},
                            "roles": {"net": copy.deepcopy(role)}, "export": {}})
    return TargetContext("net", module, m.role("net"), {}, tmp_path, tmp_path, m, ExportRecipe(static_batches=batches))


def test_a_convolution_is_planned_for_the_whole_dynamic_batch(tmp_path):
    """XNNPACK lowering of a convolution traced on 2 rows plans 15 rows, whatever the maximum: the
    exporter traces on the maximum and records the bound the program has."""
    import torch

    from edgegen.export import executorch_export
    from edgegen.runtimes.backends import create_backend
    conv = torch.nn.Conv2d(2, 2, 3, padding=1).eval()
    ctx = toy_context(tmp_path, conv, [2, 6, 6], (1, 32))
    entry, data = executorch_export.write_pte(ctx, conv, "xnnpack", "net")
    assert entry["dynamic"] and entry["max_batch"] == 32 == executorch_export.program_summary(data)["planned_batch"]
    ctx.manifest.set_file("net", "executorch", "fp32", entry)
    x = np.random.default_rng(0).standard_normal((70, 2, 6, 6)).astype(np.float32)  # 3 chunks
    y = create_backend("executorch", ctx.manifest, "net").run({"x": x})["y"]
    with torch.no_grad():
        assert np.max(np.abs(y - conv(torch.from_numpy(x)).numpy())) <= 1e-4


def test_a_role_that_cannot_be_lowered_is_refused_and_recorded(tmp_path):
    from edgegen.export import executorch_export
    from edgegen.runtimes.backends import create_backend
    ctx = toy_context(tmp_path, DataDependent.module(), [3], (1, 2))
    m = ctx.manifest
    files, checks = executorch_export.write(ctx)
    assert files == {}
    reason = m.data["export"]["executorch"]["refused"]["net"]
    assert reason.startswith("ExecuTorch cannot lower 'net' (xnnpack): dynamic batch:") and "static batch:" in reason
    assert "\n" not in reason and checks["refused"]["summary"].startswith("refused:")
    with pytest.raises(EdgegenError, match="'net' has no ExecuTorch program: the export refused it"):
        create_backend("executorch", m, "net")


def test_int8_is_calibrated_and_gated(et_bundle, tmp_path):
    from edgegen.calibration.calibrate import CalibrateRequest, calibrate
    from edgegen.calibration.gate import GateSettings
    from edgegen.runtimes.api import open_pipeline
    out, _ = et_bundle
    bundle = tmp_path / "b"
    shutil.copytree(out, bundle)
    report = calibrate(CalibrateRequest(bundle, formats=["executorch"], calls=64, naive_baseline=False,
                                        progress=False, gate=GateSettings(threads=1)))
    r = report["formats"]["executorch"]
    assert r["backend"] == "executorch" and r["passed"] and report["passed"]
    assert r["quantization"]["quantized_layers"] and r["quantization"]["quantizer"].startswith("XNNPACKQuantizer")
    m = read_manifest(bundle, verify=True)
    role = m.sampling["role"]
    entry = m.formats(role)["executorch"]["int8"]
    assert entry["path"] == f"executorch/{role}.int8.pte" and entry["calibration"] == "calibration/artifact.json"
    assert entry["bytes"] < m.formats(role)["executorch"]["fp32"]["bytes"]  # int8 weights in the program
    a = open_pipeline(bundle, "executorch", "int8").sample(8, seed=1)
    b = open_pipeline(bundle, "executorch").sample(8, seed=1)
    assert a.shape == b.shape and 0 < np.max(np.abs(a - b)) < 1.0  # quantized: close, not equal
