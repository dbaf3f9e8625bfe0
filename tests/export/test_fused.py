"""The fused whole-trajectory graph (export/fused_export.py, runtimes/fused_executor.py) on the tiny DDPM:
one ONNX graph per plan, precomputed Philox noise as its input, gated against the host loop at 1e-4."""
import json

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.export import fused_export
from edgegen.manifest import read_manifest
from edgegen.runtimes.api import Pipeline, open_pipeline
from edgegen.runtimes.fused_executor import FusedBackend, plan_digest
from edgegen.runtimes.plans import Plan


@pytest.fixture(scope="module")
def graphs(tiny_bundle, tmp_path_factory):
    """Fused graphs of DDIM-5 (clip, recomputed eps), DDIM-4 with eta 1 (noise draws) and DPM-Solver++(2M)-4."""
    m = read_manifest(tiny_bundle)
    out = tmp_path_factory.mktemp("fused")
    made = {}
    for opts in ({"sampler": "ddim", "steps": 5}, {"sampler": "ddim", "steps": 4, "eta": 1.0},
                 {"sampler": "dpmpp_2m", "steps": 4}):
        plan = Pipeline(m, "onnxruntime").plan(**opts)
        path = out / f"{plan.key}.onnx"
        info = fused_export.write(m, plan, path)
        made[plan.key] = (opts, path, info)
    return m, made


def test_one_graph_per_plan_matches_the_host_loop_on_onnxruntime(graphs):
    m, made = graphs
    for key, (opts, path, info) in made.items():
        assert info["steps"] == len(Pipeline(m, "onnxruntime").plan(**opts).steps)
        r = fused_export.gate(m, opts, path, "onnxruntime", n=3, batch_size=2)
        assert r["passed"] and r["max_abs"] <= 1e-4, r


def test_noise_is_the_philox_stream_of_the_host_loop(graphs):
    """eta = 1 draws noise at every step: a different seed changes the samples, the same one does not."""
    m, made = graphs
    opts, path, _ = made["ddim-4-eta1"]
    plan = Pipeline(m, "onnxruntime").plan(**opts)
    pipe = Pipeline(m, FusedBackend(m, "denoiser", graph=path, digest=plan_digest(plan), plan=plan.key))
    a, b = pipe.sample(2, seed=5, **opts), pipe.sample(2, seed=6, **opts)
    host = open_pipeline(m.root, "onnxruntime").sample(2, seed=6, **opts)
    assert np.abs(a - b).max() > 1e-2 and np.abs(b - host).max() <= 1e-4
    # sample i gets its own noise whatever the batch: batch 1 == batch 2
    assert np.abs(pipe.sample(2, seed=6, batch_size=1, **opts) - b).max() <= 1e-6


def test_openvino_runs_the_same_graph(graphs):
    pytest.importorskip("openvino")
    m, made = graphs
    opts, path, _ = made["ddim-5"]
    assert fused_export.gate(m, opts, path, "openvino", n=2, batch_size=2)["passed"]


def test_another_plan_or_an_unfusable_one_is_refused(graphs):
    m, made = graphs
    opts, path, _ = made["ddim-5"]
    plan = Pipeline(m, "onnxruntime").plan(**opts)
    pipe = Pipeline(m, FusedBackend(m, "denoiser", graph=path, digest=plan_digest(plan), plan=plan.key))
    with pytest.raises(EdgegenError, match="runs plan ddim-5; asked for ddim-6"):
        pipe.sample(1, steps=6)
    langevin = Plan("pc", {"steps": 1}, ["x", "eps"], [{"op": "affine", "dst": "x", "terms": [], "noise": 1.0}],
                    [{"t": 1.0, "src": "x", "dst": "eps", "ops": [{"op": "langevin", "dst": "x", "score": "eps",
                                                                    "scale": 1.0, "snr": 0.1, "alpha": 1.0}]}], "x")
    with pytest.raises(EdgegenError, match="langevin"):
        fused_export.build(m.file("denoiser", "onnx"), m.role("denoiser"), langevin, m.sample_shape)
    with pytest.raises(EdgegenError, match="single network calls"):
        pipe.backend.run({})


def test_add_to_bundle_writes_gated_graphs_the_backend_finds(tiny_bundle, tmp_path):
    import shutil
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    report = fused_export.add_to_bundle(b, [{"sampler": "ddim", "steps": 3}])
    assert report["ddim-3"]["checks"][0]["passed"]
    m = read_manifest(b, verify=True)
    entry = m.formats("denoiser")["fused"]["fp32"]
    assert set(entry["plans"]) == {"ddim-3"} and json.loads(json.dumps(entry))
    fused = Pipeline(m, FusedBackend(m, "denoiser"))  # the bundle's only fused plan
    host = open_pipeline(b, "onnxruntime")
    assert np.abs(fused.sample(2, steps=3) - host.sample(2, steps=3)).max() <= 1e-4
