"""The AOTInductor package loaded by the native C++ runtime (libedgegen built with
-DEDGEGEN_WITH_AOTI=ON against LibTorch from the torch wheel). Runs in a subprocess so this
library does not replace the default libedgegen other tests load."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

LIB = Path(__file__).resolve().parents[2] / "build" / "native-aoti" / "libedgegen.so"
BUILD = ("cmake -S . -B build/native-aoti -DEDGEGEN_WITH_AOTI=ON -DEDGEGEN_BUILD_TESTS=OFF && "
         "cmake --build build/native-aoti --target edgegen")

SCRIPT = """
import json, sys
import numpy as np
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends.native_backend import NativeBackend
m = open_manifest(sys.argv[1])
pipe = Pipeline(m, NativeBackend(m, m.sampling["role"], engine="aoti"))
np.save(sys.argv[2], pipe.sample(10, seed=4, batch_size=4))
"""


@pytest.mark.skipif(not LIB.is_file(), reason=f"libedgegen with AOTInductor is not built ({BUILD})")
def test_native_runtime_runs_the_aoti_package(tmp_path, monkeypatch):
    from edgegen.train.runs import export_run as export_bundle
    from edgegen.runtimes.api import open_pipeline
    from edgegen.train.families import get_preset
    from edgegen.train.runs import train_run
    cfg = get_preset("flow", "tiny")
    cfg.data.source = "moons"
    cfg.train.threads = 1
    run = train_run("flow", cfg, tmp_path / "run", progress=False)
    bundle = tmp_path / "bundle"
    monkeypatch.setenv("EDGEGEN_CACHE", str(tmp_path / "cache"))
    export_bundle(run, ["openvino", "aoti"], bundle, progress=False)
    out = tmp_path / "native.npy"
    env = dict(os.environ, EDGEGEN_NATIVE_LIB=str(LIB), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(bundle), str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    want = open_pipeline(bundle, "torch-aoti").sample(10, seed=4, batch_size=4)
    assert np.max(np.abs(np.load(out) - want)) < 1e-4
