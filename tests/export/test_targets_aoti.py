"""AOTInductor: package, parity gate through ``torch-aoti``, sampling equal to onnxruntime.

Compiling the tiny DDPM UNet takes about 2 minutes on one core here, too slow for ``make
test``; these tests compile the flow family's moons MLP instead (the same generic code path:
roles from the manifest, no per-family code), once per session.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.manifest import read_manifest


@pytest.fixture(scope="module")
def aoti_bundle(tmp_path_factory):
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    cfg = get_preset("flow", "tiny")
    cfg.data.source = "moons"
    cfg.train.threads = 1
    run = train_run("flow", cfg, tmp_path_factory.mktemp("runs") / "flow-moons-tiny", progress=False)
    out = tmp_path_factory.mktemp("bundles") / "flow-aoti"
    with pytest.MonkeyPatch.context() as mp:  # a private package cache: this session compiles once
        mp.setenv("EDGEGEN_CACHE", str(tmp_path_factory.mktemp("cache")))
        verify = export_bundle(run, ["onnx", "aoti"], out, progress=False)
        again = export_bundle(run, ["aoti"], out.with_name("flow-aoti-again"), progress=False)
    return out, verify, again


def test_aoti_package_passes_the_parity_gate(aoti_bundle):
    out, verify, _ = aoti_bundle
    m = read_manifest(out)
    role = m.sampling["role"]
    entry = m.formats(role)["aoti"]["fp32"]
    assert entry["path"].endswith(".pt2") and entry["requires"]["device"] == "cpu"
    r = verify["results"][role]["aoti"]["fp32"]
    assert r["backend"] == "torch-aoti" and r["passed"]
    assert r["single_call_max_abs"] <= 1e-4 and r["trajectory_max_abs"] <= 1e-3


def test_aoti_samples_like_onnxruntime(aoti_bundle):
    from edgegen.runtimes.api import open_pipeline
    out, _, _ = aoti_bundle
    a = open_pipeline(out, "torch-aoti").sample(37, seed=3, batch_size=16)  # odd sizes: dynamic batch
    b = open_pipeline(out, "onnxruntime").sample(37, seed=3, batch_size=16)
    assert np.max(np.abs(a - b)) < 1e-3


def test_aoti_refuses_a_package_for_another_torch(aoti_bundle, tmp_path):
    import json
    import shutil

    from edgegen.runtimes.api import open_pipeline
    out, _, _ = aoti_bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    data = json.loads((copy / "manifest.json").read_text())
    role = data["pipeline"]["generator"]["role"]
    data["roles"][role]["files"]["aoti"]["fp32"]["requires"]["torch"] = "1.0.0"
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EdgegenError, match="compiled with torch 1.0.0"):
        open_pipeline(copy, "torch-aoti")


def test_aoti_cache_is_reused(aoti_bundle, tmp_path):
    import torch
    from edgegen.export.aoti_export import cache_key
    from edgegen.train.torch_backend import build_role_module
    out, _, again = aoti_bundle
    m = read_manifest(out)
    role = m.sampling["role"]
    second = read_manifest(out.with_name("flow-aoti-again"))
    assert not m.formats(role)["aoti"]["fp32"]["from_cache"]  # compiled
    assert second.formats(role)["aoti"]["fp32"]["from_cache"]  # copied, and it passed the gate again
    assert again["results"][role]["aoti"]["fp32"]["passed"]
    module = build_role_module(m, role)
    key = cache_key(module, m.role(role), "cpu")
    with torch.no_grad():
        next(module.parameters()).add_(1.0)
    assert cache_key(module, m.role(role), "cpu") != key  # other weights, other package
