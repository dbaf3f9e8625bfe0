"""The target backends: clean refusals here, static batches, the CUDA-graph plan executor
(run eagerly on the CPU against the reference interpreter), and the GPU/macOS/TensorRT paths
that skip with the reason."""
from __future__ import annotations

import platform
import subprocess
import sys

import numpy as np
import pytest
from edgegen.runtimes.backends import available_backends, create_backend

from edgegen.errors import EdgegenError

NO_CUDA = "needs an NVIDIA GPU with CUDA (torch here is CPU-only or sees no device)"


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def test_coreml_and_tensorrt_refuse_with_one_line(tiny_bundle):
    from edgegen.runtimes.api import open_manifest
    m = open_manifest(tiny_bundle)
    reasons = available_backends()
    if platform.system() != "Darwin":
        assert "macOS" in reasons["coreml"]
        with pytest.raises(EdgegenError, match="backend 'coreml' cannot run here: Core ML prediction needs macOS"):
            create_backend("coreml", m, "denoiser")
    if reasons["tensorrt"]:
        assert "tensorrt" in reasons["tensorrt"].lower() or "GPU" in reasons["tensorrt"]
        with pytest.raises(EdgegenError, match="backend 'tensorrt' cannot run here"):
            create_backend("tensorrt", m, "denoiser")


def test_aoti_backend_needs_the_target_in_the_bundle(tiny_bundle):
    from edgegen.runtimes.api import open_manifest
    with pytest.raises(EdgegenError, match="has no aoti export of .denoiser."):
        create_backend("torch-aoti", open_manifest(tiny_bundle), "denoiser")


@pytest.mark.parametrize("backend", ["coreml", "tensorrt", "torch-aoti"])
def test_cli_sample_refuses_cleanly(tiny_bundle, tmp_path, backend):
    r = subprocess.run([sys.executable, "-m", "edgegen.cli", "sample", str(tiny_bundle), "--backend", backend,
                        "--n", "2", "--out", str(tmp_path / "s.png"), "--quiet"], capture_output=True, text=True)
    if backend == "coreml" and platform.system() == "Darwin":
        pytest.skip("Core ML runs here")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgegen: error:")


def test_ort_providers_by_name():
    import onnxruntime as ort
    from edgegen.runtimes.backends.onnxruntime_backend import resolve_providers
    assert resolve_providers(["cpu"]) == ["CPUExecutionProvider"]
    for name in ("qnn", "coreml", "cuda", "tensorrt", "openvino"):
        full = resolve_providers.__globals__["PROVIDER_ALIASES"][name]
        if full in ort.get_available_providers():
            assert resolve_providers([name]) == [full]
        else:
            with pytest.raises(EdgegenError, match=f"execution provider '{name}' is not available"):
                resolve_providers([name])


def test_run_static_pads_and_splits():
    from edgegen.runtimes.backends.targets import run_static
    seen = []

    def run(size, feed):
        seen.append((size, feed["x"].shape[0]))
        return {"y": feed["x"] * 2}

    x = np.arange(11, dtype=np.float32).reshape(11, 1)
    out = run_static([1, 4, 8], {"x": x}, run)
    np.testing.assert_array_equal(out["y"], x * 2)
    assert seen == [(8, 8), (4, 4)]  # 8 real rows, then 3 real rows padded to 4


def test_plan_executor_matches_the_interpreter(tiny_bundle):
    """The code that runs inside the CUDA graph, run eagerly on the CPU: same samples."""
    from edgegen.runtimes.api import Pipeline, open_manifest
    from edgegen.runtimes.backends.cuda_graph import GraphPlanRunner, role_net
    m = open_manifest(tiny_bundle)
    torch_backend = create_backend("torch", m, "denoiser")
    pipe = Pipeline(m, torch_backend)
    plan = pipe.plan("ddim", 10, eta=0.5)  # eta > 0: noise draws too
    net = role_net(torch_backend.spec, lambda named: torch_backend.module(*[named[s.name] for s in
                                                                            torch_backend.spec.inputs]))
    runner = GraphPlanRunner(net, "cpu")
    y = pipe.labels(6)
    from edgegen.runtimes.executors import PlanRequest
    got = runner.execute(plan, PlanRequest(y, 5, 4, 2.0, m.null_label, m.sample_shape))
    want = pipe.sample(6, seed=5, sampler="ddim", steps=10, eta=0.5, guidance=2.0, batch_size=4)
    assert runner.network_calls == 20
    assert np.max(np.abs(got - want)) < 1e-4


@pytest.mark.skipif(not _cuda(), reason=NO_CUDA)
def test_torch_cuda_graph_matches_cpu(tiny_bundle):
    from edgegen.runtimes.api import Pipeline, open_manifest
    m = open_manifest(tiny_bundle)
    gpu = Pipeline(m, "torch", device="cuda")
    assert gpu.backend.plan_executor() is not None
    a = gpu.sample(20, seed=1, batch_size=8)  # batches 8, 8 (replayed graph), 4
    b = Pipeline(m, "torch").sample(20, seed=1, batch_size=8)
    assert np.max(np.abs(a - b)) < 1e-3


@pytest.mark.skipif(available_backends()["tensorrt"] is not None,
                    reason=f"TensorRT engines: {available_backends()['tensorrt']}")
def test_tensorrt_engine_matches_onnxruntime(tiny_run, tmp_path):
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.runtimes.api import open_pipeline
    out = tmp_path / "trt"
    export_bundle(tiny_run, ["onnx", "tensorrt"], out, progress=False)
    a = open_pipeline(out, "tensorrt").sample(8, seed=0)
    b = open_pipeline(out, "onnxruntime").sample(8, seed=0)
    assert np.max(np.abs(a - b)) < 1e-3


@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML prediction needs macOS")
def test_coreml_prediction_matches_onnxruntime(tiny_run, tmp_path):
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.export.recipe import ExportRecipe
    from edgegen.runtimes.api import open_pipeline
    out = tmp_path / "coreml"
    export_bundle(tiny_run, ["onnx", "coreml"], out, progress=False, recipe=ExportRecipe(static_batches=(1, 8)))
    a = open_pipeline(out, "coreml", "fp32").sample(8, seed=0)
    b = open_pipeline(out, "onnxruntime").sample(8, seed=0)
    assert np.max(np.abs(a - b)) < 1e-2
