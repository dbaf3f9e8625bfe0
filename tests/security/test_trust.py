"""Formats that are code (AOTInductor .pt2, TensorRT engines) load only with the trust switch or
an allow-listed sha256; the exporter allow-lists what it builds."""
from __future__ import annotations

import os

import pytest

from edgegen.errors import EdgegenError
from edgegen.manifest import file_entry, read_manifest
from edgegen.trust import check_code, is_code, record_built, trusted_hashes
from tests.security.conftest import cli, load, native_load, save

UNSUPPORTED = 5


@pytest.fixture
def foreign_aoti(bundle):
    """The bundle plus an 'AOTInductor package' it did not build here (random bytes; sha256 matches)."""
    (bundle / "aoti").mkdir()
    (bundle / "aoti" / "denoiser.pt2").write_bytes(os.urandom(4096))
    data = load(bundle)
    data["roles"]["denoiser"]["files"]["aoti"] = {"fp32": file_entry(bundle, "aoti/denoiser.pt2")}
    save(bundle, data)
    return bundle


def test_python_refuses_foreign_package_without_trust(foreign_aoti):
    m = read_manifest(foreign_aoti)
    with pytest.raises(EdgegenError, match="refusing to load the AOTInductor package aoti/denoiser.pt2") as e:
        check_code(m, "denoiser", "aoti", "fp32")
    assert "--trust-code" in str(e.value) and "\n" not in str(e.value)
    check_code(m, "denoiser", "aoti", "fp32", trust_code=True)  # the switch


def test_allow_list_and_exporter_record(foreign_aoti, private_allow_list):
    m = read_manifest(foreign_aoti)
    sha = m.formats("denoiser")["aoti"]["fp32"]["sha256"]
    assert sha not in trusted_hashes()
    record_built(sha, "aoti denoiser test")  # what export/aoti_export.py does after building a package
    record_built(sha, "twice")  # idempotent
    assert private_allow_list.read_text().count(sha) == 1
    check_code(m, "denoiser", "aoti", "fp32")  # allow-listed: no switch needed
    # the allow-list trusts content, not names: another file under the same entry is refused again
    (foreign_aoti / "aoti" / "denoiser.pt2").write_bytes(b"other code")
    with pytest.raises(EdgegenError, match="refusing"):
        check_code(m, "denoiser", "aoti", "fp32")


def test_which_formats_are_code():
    assert is_code("aoti", {"path": "aoti/x.pt2"})
    assert not is_code("tensorrt", {"path": "tensorrt/x.onnx"})  # the engine is built here from the ONNX
    assert is_code("tensorrt", {"path": "tensorrt/x.engine"})
    assert is_code("tensorrt", {"path": "tensorrt/x.onnx", "plugins": ["libplugin.so"]})
    assert not is_code("onnx", {"path": "onnx/x.onnx"}) and not is_code("openvino", {"path": "o/x.xml"})


def test_backend_refuses_then_loads_with_trust(foreign_aoti):
    pytest.importorskip("torch")
    from edgegen.runtimes.backends import create_backend
    m = read_manifest(foreign_aoti)
    with pytest.raises(EdgegenError, match="refusing"):
        create_backend("torch-aoti", m, "denoiser")
    with pytest.raises(EdgegenError) as e:  # trusted: it gets as far as torch's loader (random bytes fail there)
        create_backend("torch-aoti", m, "denoiser", trust_code=True)
    assert "refusing" not in str(e.value)


def test_cli_trust_code_flag(foreign_aoti):
    pytest.importorskip("torch")
    args = ["sample", str(foreign_aoti), "--backend", "torch-aoti", "--n", "1", "--steps", "2", "--quiet",
            "--out", str(foreign_aoti.parent / "s.png")]
    r = cli(*args)
    assert r.returncode == 2 and "refusing to load the AOTInductor package" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli(*args, "--trust-code")
    assert r.returncode == 2 and "refusing" not in r.stderr, r.stderr  # past the gate: torch rejects the bytes


def test_native_library_trust_switch(foreign_aoti, private_allow_list):
    status, msg = native_load(foreign_aoti, backend="aoti")
    assert status == UNSUPPORTED and "refusing to load the AOTInductor package" in msg, msg
    status, msg = native_load(foreign_aoti, backend="aoti", trust_code=1)
    assert "refusing" not in msg, msg  # past the gate (this library may be built without AOTInductor)
    sha = read_manifest(foreign_aoti).formats("denoiser")["aoti"]["fp32"]["sha256"]
    private_allow_list.write_text(f"# test\n{sha}  aoti denoiser\n")
    status, msg = native_load(foreign_aoti, backend="aoti")
    assert "refusing" not in msg, msg
