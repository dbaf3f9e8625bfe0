"""The native library's ExecuTorch backend (runtimes/native/src/executorch_network.cpp) against
Python's ExecuTorch runtime (runtimes/backends/executorch_backend.py) on the same .pte, seed and plan.

Lowering a UNet to .pte takes over a minute here (tests/export/test_executorch.py), so like those
tests this uses the flow family's moons MLP: the same generic code path (the role's inputs and
outputs from the manifest, one network call per plan step), exported in seconds. The small DDPM's
figure (DDIM-50, 8 samples) is in docs/notes/issue-17-executorch.md.
"""
from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.backends.native_backend import NativeBackend

REASON = NativeBackend.unavailable()
if REASON is None:
    from edgegen.runtimes.backends.native_backend import library_backends
    if "executorch" not in library_backends():
        REASON = ("libedgegen was built without its ExecuTorch backend (EDGEGEN_WITH_EXECUTORCH: the executorch "
                  "package's CMake config was not found)")
if REASON is None and importlib.util.find_spec("executorch") is None:
    REASON = "the Python package 'executorch' is not installed (pip install 'edgegen[executorch]')"
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native ExecuTorch not available: {REASON}")

TOL = 1e-4


@pytest.fixture(scope="module")
def et_bundle(tmp_path_factory):
    from edgegen.export.recipe import ExportRecipe
    from edgegen.train.families import get_preset
    from edgegen.train.runs import export_run, train_run
    cfg = get_preset("flow", "tiny")
    cfg.data.source = "moons"
    cfg.train.threads = 1
    run = train_run("flow", cfg, tmp_path_factory.mktemp("runs") / "flow-moons-tiny", progress=False)
    out = tmp_path_factory.mktemp("bundles") / "flow-et"
    export_run(run, ["onnx", "openvino", "executorch"], out, progress=False,
               recipe=ExportRecipe(executorch_delegates=()))
    return out


def edited(src, dst, edit):
    """A copy of bundle ``src`` whose manifest ``edit(data, generator_role)`` changed."""
    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    edit(data, data["pipeline"]["generator"]["role"])
    (dst / "manifest.json").write_text(json.dumps(data))
    return dst


def sample(bundle, backend, n=37, **opts):
    from edgegen.runtimes.api import open_pipeline
    return open_pipeline(bundle, backend, threads=1, **opts).sample(n, seed=3, batch_size=16)


def test_native_executorch_equals_python_executorch(et_bundle):
    ref = sample(et_bundle, "executorch")  # odd n, batch 16: a full chunk, then a short one
    got = sample(et_bundle, "native", engine="executorch")
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert np.max(np.abs(got - ref)) <= TOL
    # the bundle's OpenVINO IR through the same library agrees too (the same network, another runtime)
    assert np.max(np.abs(sample(et_bundle, "native") - ref)) <= 1e-3


def test_an_executorch_only_bundle_runs_natively_by_default(et_bundle, tmp_path):
    def only_pte(data, role):
        for r in data["roles"].values():
            for fmt in ("onnx", "openvino"):
                r["files"].pop(fmt, None)
    b = edited(et_bundle, tmp_path / "b", only_pte)
    from edgegen.runtimes.api import open_manifest
    from edgegen.runtimes.backends.native_backend import default_engine
    assert default_engine(open_manifest(b)) == "executorch"
    assert np.max(np.abs(sample(b, "native") - sample(et_bundle, "executorch"))) <= TOL


def test_chunks_and_static_batches(et_bundle, tmp_path):
    """A program planned for fewer rows than the batch runs in chunks; a static-batch entry pads
    each chunk up to the next compiled size (both the Python backend's rules)."""
    ref = sample(et_bundle, "executorch")

    def small(data, role):
        data["roles"][role]["files"]["executorch"]["fp32"]["max_batch"] = 5
    assert np.max(np.abs(sample(edited(et_bundle, tmp_path / "c", small), "native", engine="executorch") - ref)) <= TOL

    def static(data, role):  # the dynamic program takes 8 or 64 rows: stands in for per-size files
        e = data["roles"][role]["files"]["executorch"]["fp32"]
        e.update(dynamic=False, static_batches={"8": e["path"], "64": e["path"]}, companions=[])
        e.pop("max_batch")
    assert np.max(np.abs(sample(edited(et_bundle, tmp_path / "s", static), "native", engine="executorch") - ref)) <= TOL


def load_error(bundle, **opts) -> str:
    from edgegen.runtimes.api import open_manifest
    m = open_manifest(bundle, verify=False)
    with pytest.raises(EdgegenError) as e:
        NativeBackend(m, m.generator["role"], engine="executorch", **opts)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_refusals_are_one_line(et_bundle, tmp_path):
    assert "runs XNNPACK programs on the CPU" in load_error(et_bundle, device="GPU")

    def coreml(data, role):
        data["roles"][role]["files"]["executorch"]["fp32"]["requires"]["delegates"] = ["CoreMLBackend"]
    msg = load_error(edited(et_bundle, tmp_path / "d", coreml))
    assert "needs the CoreMLBackend delegate" in msg and "XnnpackBackend" in msg

    def no_pte(data, role):
        data["roles"][role]["files"].pop("executorch")
    assert "executorch" in load_error(edited(et_bundle, tmp_path / "n", no_pte))


def test_a_corrupt_program_is_refused(et_bundle, tmp_path):
    b = tmp_path / "x"
    shutil.copytree(et_bundle, b)
    data = json.loads((b / "manifest.json").read_text())
    pte = b / data["roles"][data["pipeline"]["generator"]["role"]]["files"]["executorch"]["fp32"]["path"]
    raw = bytearray(pte.read_bytes())
    raw[8:40] = b"\xff" * 32  # inside the flatbuffer's root table offsets
    pte.write_bytes(bytes(raw))
    assert "ExecuTorch program" in load_error(b)  # sha256 off: the flatbuffer verification catches it
    from edgegen.runtimes.backends import native_backend
    import ctypes
    lib = native_backend._load()
    lp = native_backend.LoadParams()
    lib.edgegen_load_params_init(ctypes.byref(lp))
    lp.backend = b"executorch"
    handle = ctypes.c_void_p()
    assert lib.edgegen_bundle_load(str(b).encode(), ctypes.byref(lp), ctypes.byref(handle)) == 4  # INTEGRITY
    assert "sha256" in lib.edgegen_last_error().decode()
