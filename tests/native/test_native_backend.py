"""The native backend from Python: CLI, errors, and the reason it gives when it cannot run."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import available_backends
from edgegen.runtimes.backends import native_backend
from edgegen.runtimes.backends.native_backend import NativeBackend

REASON = NativeBackend.unavailable()
needs_lib = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")


def test_unavailable_names_the_fix(tmp_path):
    code = ("from edgegen.runtimes.backends.native_backend import NativeBackend as N; print(N.unavailable())")
    env = {"EDGEGEN_NATIVE_LIB": str(tmp_path / "libedgegen.so"), "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "make native" in out and "libedgegen.so" in out
    assert "native" in available_backends()


@needs_lib
def test_ctypes_mirrors_match_the_library():
    lib = native_backend._load()
    for name, cls in native_backend.STRUCTS.items():
        assert lib.edgegen_struct_size(name.encode()) == __import__("ctypes").sizeof(cls)


@needs_lib
def test_cli_sample_and_eval_on_native(tiny_bundle, tmp_path, capsys):
    from edgegen.cli import main
    out = tmp_path / "s.png"
    assert main(["sample", str(tiny_bundle), "--backend", "native", "--n", "4", "--quiet", "--out", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".npy").is_file()
    ref = tmp_path / "r.png"
    assert main(["sample", str(tiny_bundle), "--backend", "openvino", "--n", "4", "--quiet", "--out", str(ref)]) == 0
    assert np.abs(np.load(out.with_suffix(".npy")) - np.load(ref.with_suffix(".npy"))).max() <= 1e-4


@needs_lib
def test_errors_are_edgegen_errors(tiny_bundle):
    pipe = Pipeline(open_manifest(tiny_bundle), "native")
    with pytest.raises(EdgegenError, match="label 12 is out of range"):
        pipe.sample(2, labels=12)
    with pytest.raises(EdgegenError, match="plan"):
        pipe.backend.run_plan({"format": "edgegen.plan/1", "sampler": "x", "registers": ["x"], "init": [],
                               "steps": [], "output": "x"}, np.zeros(1, np.int64), 0, 1, 1.0, 10, (1, 16, 16))
    with pytest.raises(EdgegenError, match="whole plans"):
        pipe.sample(1, on_eval=lambda *a: None)
    with pytest.raises(EdgegenError, match="device"):
        Pipeline(open_manifest(tiny_bundle), "native", device="TPU")
