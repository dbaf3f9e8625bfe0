"""``edgegen serve-web``: one-line errors for bad input; a real run serves the page on 127.0.0.1."""
from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORT_WEB = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist" / "ort.min.mjs"


def edgegen(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgegen.cli", *args], capture_output=True, text=True, timeout=60, **kw)


def test_bad_bundle_and_port_are_one_line(tmp_path):
    for args, want in ((["serve-web", str(tmp_path / "nope")], "bundle not found"),
                       (["serve-web", str(tmp_path)], "is not a bundle"),
                       (["serve-web", str(tmp_path), "--port", "70000"], "port must be in 0..65535")):
        r = edgegen(*args)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("edgegen: error: ") and want in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_missing_node_modules_is_one_line(tiny_bundle, tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html>")
    r = edgegen("serve-web", str(tiny_bundle), "--web-dir", str(web))
    assert r.returncode == 2 and "make web-deps" in r.stderr and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.skipif(not ORT_WEB.exists(), reason="web/node_modules/onnxruntime-web is missing (make web-deps)")
def test_serve_web_serves_the_page_and_stops(tiny_bundle):
    p = subprocess.Popen([sys.executable, "-m", "edgegen.cli", "serve-web", str(tiny_bundle), "--port", "0", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert "http://127.0.0.1:" in line, line + p.stderr.read()
        url = line[line.index("http://"):].split()[0]
        with urllib.request.urlopen(url, timeout=10) as r:
            assert b"edgegen" in r.read() and r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        with urllib.request.urlopen(url + "bundle/manifest.json", timeout=10) as r:
            assert b'"plans"' in r.read()
    finally:
        p.terminate()
        p.wait(timeout=10)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)
