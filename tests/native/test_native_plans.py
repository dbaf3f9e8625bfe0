"""Plans an app can ask for: `edgegen export --plans` stores them, the C API lists them
(edgegen_bundle_plan_keys, `edgegen-run --list-plans`), and the native runtime runs them."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgegen.cli import main
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import native_backend
from edgegen.runtimes.backends.native_backend import NativeBackend

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")


def test_export_plans_then_list_and_run_them(tiny_run, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["export", str(tiny_run), "--format", "onnx,openvino", "--plans", "ddim-10,ddim-25,ddim-50,ddpm",
                 "--quiet", "--out", str(out)]) == 0
    m = open_manifest(out)
    assert sorted(m.data["plans"]) == ["ddim-10", "ddim-25", "ddim-50", "ddpm-1000"]
    run = native_backend.library_path().parent / "edgegen-run"
    if run.is_file():
        listed = subprocess.run([str(run), str(out), "--list-plans"], capture_output=True, text=True, check=True)
        assert sorted(listed.stdout.split()) == sorted(m.data["plans"])
    nat = Pipeline(m, "native")
    a = nat.sample(3, seed=1, sampler="ddim", steps=10, batch_size=2)
    b = Pipeline(m, "openvino").sample(3, seed=1, sampler="ddim", steps=10)
    assert float(np.abs(a - b).max()) <= 1e-4
    lib = native_backend._load()  # a plan not stored: the C API names the stored ones
    sp = native_backend.SampleParams()
    lib.edgegen_sample_params_init(native_backend.ctypes.byref(sp))
    sp.sampler, sp.steps = b"ddim", 7
    count = native_backend.ctypes.c_size_t()
    assert lib.edgegen_sample_count(nat.backend._handle, native_backend.ctypes.byref(sp),
                                     native_backend.ctypes.byref(count)) == 5
    assert "stored: ddim-10, ddim-25, ddim-50, ddpm-1000" in lib.edgegen_last_error().decode()
    nat.backend.close()
    capsys.readouterr()
    for bad, msg in (("ddim-0", "positive integer"), (",", "comma list"), ("nosuch-5", "nosuch")):
        assert main(["export", str(tiny_run), "--plans", bad, "--quiet", "--out", str(tmp_path / "x")]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
