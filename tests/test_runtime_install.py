"""The runtime-only install: a fresh venv with the base dependencies only (no torch, no openvino)
samples an ONNX bundle of every family, never imports torch, and refuses what needs an extra in
one line naming it.

The venv is built once per session (about a minute: pip takes the wheels from its cache).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("ddpm", "sde", "flow", "gan", "vqvae", "dalle")

# Runs inside the fresh venv: every CLI command in-process, then checks what was imported.
PROBE = r"""
import json, sys
from edgegen.cli import main
bundle, out = sys.argv[1], sys.argv[2]
rc_info = main(["info", bundle])
rc_sample = main(["sample", bundle, "--n", "4", "--seed", "3", "--out", out, "--quiet"])
heavy = sorted(m for m in ("torch", "openvino", "scipy", "sklearn", "onnx", "matplotlib") if m in sys.modules)
print("PROBE " + json.dumps({"info": rc_info, "sample": rc_sample, "imported": heavy}))
"""


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "base"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["setuptools>=68", "wheel"], check=True, timeout=600)
    # the project itself, non-editable, with only its base dependencies; built from a copy of the
    # sources so setuptools' build/ folder never lands in (or is reused from) the checkout
    src = tmp_path_factory.mktemp("src")
    for name in ("edgegen", "train", "export", "runtimes", "calibration"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "native"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(pip + ["--no-build-isolation", str(src)], check=True, timeout=900)
    return env


@pytest.fixture(scope="session")
def family_bundles(tiny_bundle, vq_bundle, dalle_bundle, family_bundle) -> dict:
    out = {"ddpm": tiny_bundle, "vqvae": vq_bundle, "dalle": dalle_bundle}
    for name in FAMILIES:
        if name not in out:
            out[name] = family_bundle(name)
    return out


def run(env: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / args[0]), *args[1:]], capture_output=True, text=True, timeout=600,
                          cwd=env)


def test_base_install_has_no_heavy_packages(base_venv):
    r = run(base_venv, "python", "-c", "import importlib.util as u; print([m for m in ('torch', 'openvino', "
            "'scipy', 'sklearn', 'onnx') if u.find_spec(m)])")
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize("family", FAMILIES)
def test_base_install_samples_every_family_without_torch(base_venv, family_bundles, family, tmp_path):
    bundle = family_bundles[family]
    out = tmp_path / "s.png"
    r = run(base_venv, "python", "-c", PROBE, str(bundle), str(out))
    line = next((x for x in r.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line, r.stdout + r.stderr
    probe = json.loads(line[6:])
    assert probe == {"info": 0, "sample": 0, "imported": []}, r.stderr
    # the same samples as the full install gives
    from edgegen.runtimes.api import open_pipeline
    want = open_pipeline(bundle, "onnxruntime").sample(4, seed=3)
    assert np.array_equal(np.load(out.with_suffix(".npy")), want)


@pytest.mark.parametrize("args, message", [
    (["sample", "{b}", "--backend", "openvino", "--out", "{o}"],
     "edgegen: error: backend 'openvino' cannot run here: the Python package 'openvino' is not installed "
     "(pip install 'edgegen[openvino]')"),
    (["sample", "{b}", "--backend", "torch", "--out", "{o}"],
     "edgegen: error: backend 'torch' needs the Python package 'torch': pip install 'edgegen[train]'"),
    (["train", "ddpm", "--preset", "tiny"],
     "edgegen: error: edgegen train needs the Python package 'torch': pip install 'edgegen[train]'"),
    (["export", "{b}", "--out", "{o}"],
     "edgegen: error: this command needs the Python package 'torch': pip install 'edgegen[train]'"),
])
def test_missing_extra_is_one_line(base_venv, tiny_bundle, tmp_path, args, message):
    out = tmp_path / "x.png"
    r = run(base_venv, "edgegen", *[a.format(b=tiny_bundle, o=out) for a in args])
    assert r.returncode == 2
    assert r.stderr.strip() == message
    assert not out.exists()
