"""benchmarks/run_matrix.py: the latency matrix covers the trainable families only (an imported-only
family such as diffusers has no preset to train); naming one refuses in one line, exit 2, nothing written."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edgegen.errors import EdgegenError
from edgegen.train.families import FAMILIES, NOT_TRAINABLE, trainable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_matrix():
    spec = importlib.util.spec_from_file_location("run_matrix", ROOT / "benchmarks" / "run_matrix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_default_is_every_trainable_family(run_matrix):
    got = run_matrix.matrix_families(None, ["small", "base"], {})
    assert got == trainable() and "diffusers" in NOT_TRAINABLE and "diffusers" in FAMILIES
    assert "diffusers" not in got and {"ddpm", "ldm"} <= set(got)


def test_an_imported_only_family_needs_its_bundles(run_matrix):
    with pytest.raises(EdgegenError, match="diffusers models are imported, not trained here"):
        run_matrix.matrix_families("ddpm,diffusers", ["small"], {})
    with pytest.raises(EdgegenError, match="unknown model 'nope'"):
        run_matrix.matrix_families("nope", ["small"], {})
    given = {"diffusers-small": "bundles/imported"}  # every preset given as a bundle: nothing to train
    assert run_matrix.matrix_families("ddpm,diffusers", ["small"], given) == ["ddpm", "diffusers"]
    with pytest.raises(EdgegenError, match="imported, not trained"):  # base would have to be trained
        run_matrix.matrix_families("diffusers", ["small", "base"], given)


def test_cli_refuses_in_one_line_and_writes_nothing(run_matrix, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_matrix.main(["--families", "diffusers", "--presets", "small", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("run_matrix: diffusers models are imported") and "\n" not in err
    assert not out.exists()
