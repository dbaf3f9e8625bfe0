"""The layer rules (pyproject [tool.importlinter], ARCHITECTURE.md) hold, and a wrong import breaks them.

import-linter's grimp maps modules to files by walking the root package's folder, but the
distribution maps edgegen.train to train/ (package-dir). So the check runs on a tree of symlinks
shaped like the installed package; the deliberate violation adds one module to a copy of it.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"train": "train", "export": "export", "runtimes": "runtimes", "calibration": "calibration"}
LINT = Path(sys.executable).with_name("lint-imports")


def package_tree(dest: Path, extra: dict[str, str] | None = None) -> Path:
    """dest/edgegen: edgegen/ and the stage folders as the installed package sees them.
    ``extra``: {"runtimes/_probe.py": source} adds modules (their folder becomes a copy of links)."""
    pkg = dest / "edgegen"
    pkg.mkdir(parents=True)
    for f in (ROOT / "edgegen").iterdir():
        if f.name != "__pycache__":
            (pkg / f.name).symlink_to(f)
    extra = extra or {}
    for name, folder in PACKAGES.items():
        if any(k.startswith(name + "/") for k in extra):
            (pkg / name).mkdir()
            for f in (ROOT / folder).iterdir():
                if f.name != "__pycache__":
                    (pkg / name / f.name).symlink_to(f)
        else:
            (pkg / name).symlink_to(ROOT / folder)
    for rel, text in extra.items():
        (pkg / rel).write_text(text)
    return dest


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([str(LINT), "--no-cache", str(ROOT / "pyproject.toml")], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install 'edgegen[test]')")
def test_layer_contracts_hold(tmp_path):
    r = lint(package_tree(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout


@pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install 'edgegen[test]')")
def test_runtime_importing_train_breaks_the_contract(tmp_path):
    probe = "def f():\n    from edgegen.train.runs import open_source  # a runtime must never do this\n"
    r = lint(package_tree(tmp_path, {"runtimes/_probe.py": probe}))
    assert r.returncode != 0
    assert "edgegen.runtimes._probe -> edgegen.train.runs" in r.stdout
