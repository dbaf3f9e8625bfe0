"""A library apps can install (issue 17): `cmake --install build/native --prefix P`, then a
tiny consumer (examples/consumer) built twice against the installed tree - with
find_package(edgegen) and with pkg-config - and run on the tiny test bundle."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "native"
TESTDATA = ROOT / "build" / "testdata" / "ddpm-tiny"
CONSUMER = ROOT / "examples" / "consumer"

pytestmark = pytest.mark.skipif(
    not (BUILD / "CMakeCache.txt").is_file() or shutil.which("cmake") is None or shutil.which("pkg-config") is None,
    reason="needs a configured build/native (make native), cmake and pkg-config")


def _run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    p = tmp_path_factory.mktemp("edgegen-prefix")
    _run(["cmake", "--build", BUILD, "-j2", "--target", "edgegen", "edgegen_static", "edgegen-run"])
    _run(["cmake", "--install", BUILD, "--prefix", p])
    return p


@pytest.fixture(scope="module")
def bundle(request):
    if (TESTDATA / "manifest.json").is_file():
        return TESTDATA
    return request.getfixturevalue("tiny_bundle")  # trains and exports the tiny DDPM


def _env():  # the consumer must not find anything in the source tree or the venv by accident
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEGEN_NATIVE_LIB", "LD_LIBRARY_PATH")}
    return env


def test_installed_tree(prefix):
    for rel in ["include/edgegen.h", "include/edgegen.hpp", "lib/libedgegen.a", "bin/edgegen-run",
                "lib/cmake/edgegen/edgegenConfig.cmake", "lib/cmake/edgegen/edgegenConfigVersion.cmake",
                "lib/cmake/edgegen/edgegenTargets.cmake", "lib/pkgconfig/edgegen.pc"]:
        assert (prefix / rel).is_file(), rel
    assert list((prefix / "lib").glob("libedgegen.so*"))
    assert "usage: edgegen-run" in _run([prefix / "bin" / "edgegen-run", "--help"], env=_env())


def test_find_package_consumer(prefix, bundle, tmp_path):
    build = tmp_path / "build"
    _run(["cmake", "-S", CONSUMER, "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"],
         env=_env())
    _run(["cmake", "--build", build, "-j2"], env=_env())
    for exe in ["consumer", "consumer_static"]:
        out = _run([build / exe, bundle], env=_env())
        assert "values, 50 steps" in out, out


def test_pkg_config_consumer(prefix, bundle, tmp_path):
    env = dict(_env(), PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = _run(["pkg-config", "--cflags", "--libs", "edgegen"], env=env).split()
    assert any(f.endswith("include") for f in flags) and "-ledgegen" in flags
    assert _run(["pkg-config", "--modversion", "edgegen"], env=env).strip() == "0.1.0"
    exe = tmp_path / "consumer_pc"
    _run([os.environ.get("CC", "cc"), CONSUMER / "consumer.c", "-o", exe, *flags], env=env)
    out = _run([exe, bundle], env=_env())
    assert "values, 50 steps" in out, out
