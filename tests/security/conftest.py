"""Fixtures for the bundle-security tests: a small valid bundle copied per test, helpers to run
the CLI, the native library (ctypes) and edgegen-run on it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO / "build" / "testdata" / "ddpm-tiny"  # `make native-testdata` (the C++ tests' bundle)
EDGEGEN_RUN = REPO / "build" / "native" / "edgegen-run"


@pytest.fixture(scope="session")
def source_bundle(tmp_path_factory) -> Path:
    """A valid DDPM bundle (onnx + openvino), version 2: the C++ tests' bundle when built, else exported."""
    src = TESTDATA
    if not (src / "manifest.json").is_file():
        from edgegen.train.families import get_preset
        from edgegen.train.runs import export_run, train_run
        run = train_run("ddpm", get_preset("ddpm", "tiny"), tmp_path_factory.mktemp("runs") / "ddpm-tiny", progress=False)
        src = tmp_path_factory.mktemp("bundles") / "ddpm-tiny"
        export_run(run, ["onnx", "openvino"], src, progress=False)
    out = tmp_path_factory.mktemp("secbase") / "bundle"
    shutil.copytree(src, out)
    from edgegen.manifest import migrate
    data = migrate(json.loads((out / "manifest.json").read_text()))
    data.pop("migrated_from", None)
    data.pop("training", None)  # not read by runtimes; keeps the mutation corpus small
    (out / "manifest.json").write_text(json.dumps(data, indent=1))
    return out


@pytest.fixture
def bundle(source_bundle, tmp_path) -> Path:
    """A private copy of the valid bundle, inside tmp_path/parent/ (so ../ lands in tmp_path/)."""
    out = tmp_path / "parent" / "bundle"
    shutil.copytree(source_bundle, out)
    return out


def load(b: Path) -> dict:
    return json.loads((b / "manifest.json").read_text())


def save(b: Path, data: dict) -> None:
    (b / "manifest.json").write_text(json.dumps(data, indent=1, allow_nan=True))


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgegen.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def native_lib():
    from edgegen.runtimes.backends import native_backend
    reason = native_backend.NativeBackend.unavailable()
    if reason:
        pytest.skip(reason)
    return native_backend._load()


def native_load(b: Path, backend: str = "openvino", trust_code: int = 0, verify: int = 1) -> tuple[int, str]:
    """edgegen_bundle_load through ctypes: (status, last error)."""
    import ctypes
    from edgegen.runtimes.backends.native_backend import LoadParams
    lib = native_lib()
    lp = LoadParams()
    lib.edgegen_load_params_init(ctypes.byref(lp))
    keep = backend.encode()
    lp.backend = keep
    lp.verify_sha256 = verify
    lp.trust_code = trust_code
    h = ctypes.c_void_p()
    status = lib.edgegen_bundle_load(str(b).encode(), ctypes.byref(lp), ctypes.byref(h))
    if status == 0:
        lib.edgegen_bundle_free(h)
    return status, lib.edgegen_last_error().decode(errors="replace")


@pytest.fixture(autouse=True)
def private_allow_list(tmp_path, monkeypatch) -> Path:
    """Each test gets an empty allow-list of trusted code (never the user's ~/.config one)."""
    path = tmp_path / "trusted-code.sha256"
    monkeypatch.setenv("EDGEGEN_TRUSTED_CODE", str(path))
    return path
