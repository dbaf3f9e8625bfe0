"""Every path a manifest names stays inside the bundle: relative, absolute and symlinked escapes
(each pointing at a byte-identical copy, so the sha256 still matches) are refused by read_manifest,
`edgegen info`, `edgegen sample`, the native library and edgegen-run, before the file is opened."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from edgegen.errors import EdgegenError
from edgegen.manifest import read_manifest
from tests.security.conftest import EDGEGEN_RUN, cli, load, native_load, save

MALFORMED = 3


def onnx_with_external(location: str) -> bytes:
    """A minimal ModelProto: graph { initializer { name "w", external_data {location: ...}, data_location 1 } }."""
    def ld(field: int, payload: bytes) -> bytes:
        n, out = len(payload), b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                break
        return bytes([(field << 3) | 2]) + out + payload
    entry = ld(1, b"location") + ld(2, location.encode())
    tensor = ld(8, b"w") + ld(13, entry) + bytes([(14 << 3) | 0, 1])
    return bytes([(1 << 3) | 0, 8]) + ld(7, ld(5, tensor))


def _escape(bundle, kind: str):
    """Make the bundle's openvino .xml (or another entry) escape; returns (JSON path fragment, target)."""
    data = load(bundle)
    files = data["roles"]["denoiser"]["files"]
    xml = bundle / files["openvino"]["fp32"]["path"]
    outside = bundle.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    copy = outside / "denoiser.xml"
    shutil.copy(xml, copy)
    shutil.copy(xml.with_suffix(".bin"), outside / "denoiser.bin")
    if kind == "relative":
        files["openvino"]["fp32"]["path"] = "../../outside/denoiser.xml"
        frag = "roles.denoiser.files.openvino.fp32.path"
    elif kind == "absolute":
        files["openvino"]["fp32"]["path"] = str(copy)
        frag = "roles.denoiser.files.openvino.fp32.path"
    elif kind == "symlink":
        xml.unlink()
        os.symlink(copy, xml)
        frag = "roles.denoiser.files.openvino.fp32.path"
    elif kind == "symlink-dir":  # a folder symlink in the middle of the path
        shutil.rmtree(bundle / "openvino")
        os.symlink(outside, bundle / "openvino")
        frag = "roles.denoiser.files"
    elif kind == "companion":
        files["openvino"]["fp32"]["companions"][0]["path"] = "../../outside/denoiser.bin"
        frag = "companions[0].path"
    elif kind == "bin-beside-xml":  # the .bin OpenVINO opens beside the IR, a symlink out
        b = xml.with_suffix(".bin")
        b.unlink()
        os.symlink(outside / "denoiser.bin", b)
        frag = "roles.denoiser.files.openvino"
    elif kind == "side-file":
        shutil.copy(bundle / "verify.json", outside / "verify.json")
        from edgegen.manifest import file_entry
        e = file_entry(bundle, "verify.json")
        e["path"] = "../../outside/verify.json"
        data["files"] = {"tokenizer": e}
        frag = "files.tokenizer.path"
    elif kind == "tokenizer":
        data["pipeline"]["condition"] = {"kind": "prompt", "tokenizer": {"file": "/etc/passwd", "text_length": 8}}
        frag = "pipeline.condition.tokenizer.file"
    elif kind == "calibration":
        data["calibration"] = {"artifact": "../calibration/artifact.json"}
        frag = "calibration.artifact"
    elif kind == "onnx-external":
        onnx = bundle / files["onnx"]["fp32"]["path"]
        onnx.write_bytes(onnx_with_external("../../x"))
        from edgegen.manifest import sha256_file
        files["onnx"]["fp32"]["sha256"] = sha256_file(onnx)
        frag = "ONNX external data"
    elif kind == "onnx-external-abs":
        onnx = bundle / files["onnx"]["fp32"]["path"]
        onnx.write_bytes(onnx_with_external("/etc/passwd"))
        from edgegen.manifest import sha256_file
        files["onnx"]["fp32"]["sha256"] = sha256_file(onnx)
        frag = "ONNX external data"
    elif kind == "coreml-package":  # a package folder with a symlink inside that leaves
        pkg = bundle / "coreml" / "b1.mlpackage"
        pkg.mkdir(parents=True)
        (pkg / "Manifest.json").write_text("{}")
        os.symlink(outside / "denoiser.bin", pkg / "weight.bin")
        from edgegen.manifest import file_entry
        e = file_entry(bundle, "coreml/b1.mlpackage/Manifest.json")
        e["static_batches"] = {"1": "coreml/b1.mlpackage"}
        files["coreml"] = {"fp16": e}
        frag = "static_batches"
    else:
        raise AssertionError(kind)
    save(bundle, data)
    return frag


KINDS = ["relative", "absolute", "symlink", "symlink-dir", "companion", "bin-beside-xml", "side-file", "tokenizer",
         "calibration", "onnx-external", "onnx-external-abs", "coreml-package"]


@pytest.mark.parametrize("kind", KINDS)
def test_python_refuses_escape_before_opening(bundle, kind, monkeypatch):
    frag = _escape(bundle, kind)
    opened = []
    import edgegen.manifest as manifest_mod
    monkeypatch.setattr(manifest_mod, "sha256_file", lambda p: opened.append(p) or "0" * 64)
    with pytest.raises(EdgegenError) as e:
        read_manifest(bundle)
    msg = str(e.value)
    assert "\n" not in msg and frag in msg, msg
    assert opened == []  # refused before any listed file was hashed (opened)


@pytest.mark.parametrize("kind", ["absolute", "symlink"])
def test_cli_info_and_sample_refuse(bundle, kind):
    _escape(bundle, kind)
    for args in (["info", str(bundle)], ["sample", str(bundle), "--n", "1", "--steps", "2", "--quiet",
                                        "--out", str(bundle.parent / "s.png")]):
        r = cli(*args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgegen: error:"), r.stderr
    assert not (bundle.parent / "s.png").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_native_library_refuses_escape(bundle, kind):
    frag = _escape(bundle, kind)
    status, msg = native_load(bundle)
    assert status == MALFORMED, msg
    assert frag in msg or frag.replace("[0]", "") in msg, msg


@pytest.mark.parametrize("kind", ["symlink", "companion", "bin-beside-xml"])
def test_edgegen_run_refuses_without_opening(bundle, kind):
    """The escape target is a FIFO: opening it would block, so a timely exit 2 proves nothing was opened."""
    if not EDGEGEN_RUN.is_file():
        pytest.skip("edgegen-run is not built (make native)")
    _escape(bundle, kind)
    outside = bundle.parent.parent / "outside"
    for name in ("denoiser.xml", "denoiser.bin"):
        (outside / name).unlink()
        os.mkfifo(outside / name)
    r = subprocess.run([str(EDGEGEN_RUN), str(bundle), "--n", "1", "--steps", "2", "--out", str(bundle.parent / "x.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "bundle folder" in r.stderr, r.stderr


def test_valid_bundle_and_inner_symlink_still_load(bundle):
    """A symlink that stays inside the bundle is fine (containment, not a symlink ban)."""
    data = load(bundle)
    os.symlink("denoiser.onnx", bundle / "onnx" / "alias.onnx")
    data["roles"]["denoiser"]["files"]["onnx"]["fp32"]["path"] = "onnx/alias.onnx"
    save(bundle, data)
    read_manifest(bundle)
    assert native_load(bundle)[0] == 0
