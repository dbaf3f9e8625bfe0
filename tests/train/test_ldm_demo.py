"""``edgegen demo --model ldm`` on the tiny LDM preset (digits): the evaluator comes from the bundle's
data set and shape, prompts are the held-out caption templates, every backend samples the same seed,
and the report and the prompts x samples grid are written. The bundle is shared with test_ldm.py."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from edgegen.cli import main


@pytest.fixture(scope="module")
def ldm_bundle(family_bundle):
    return family_bundle("ldm")


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_scores_a_given_ldm_bundle_read_only(ldm_bundle, evaluator, evaluator_cache, tmp_path, monkeypatch,
                                                  capsys):
    monkeypatch.setenv("EDGEGEN_CACHE", str(evaluator_cache))  # the session's digit evaluator
    before = _snapshot(ldm_bundle)
    out = tmp_path / "demo"
    assert main(["demo", "--model", "ldm", "--bundle", str(ldm_bundle), "--n", "20", "--out", str(out),
                 "--quiet"]) == 0
    assert _snapshot(ldm_bundle) == before  # nothing written into the given bundle
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"] == {"fid": "digit-FID", "accuracy": "prompt accuracy"}
    assert report["prompts"] == "held-out templates" and report["plan"].startswith("ddim-50")
    assert {"torch", "onnxruntime", "openvino"} <= set(report["backends"])
    for s in report["backends"].values():
        assert s["n"] == 20 and 0.0 <= s["accuracy"] <= 1.0 and np.isfinite(s["fid"])
        assert s["same_seed_max_abs"] <= 1e-4  # the same seed gives the same samples everywhere
        assert "memorization" in s
    from edgegen.runtimes.backends.native_backend import NativeBackend
    if NativeBackend.unavailable() is None:  # the C library runs the whole LDM pipeline (ABI 4)
        assert report["backends"]["native"]["same_seed_max_abs"] <= 1e-4
    rec = report["reconstruction"]
    assert rec["n"] == 360 and rec["mse"] >= 0 and 0.0 <= rec["accuracy"] <= 1.0
    # the grid: one row per class, its samples prompted with held-out templates only
    from edgegen.train.ldm_captions import DIGITS
    rows = report["grid"]["rows"]
    assert [r["class"] for r in rows] == list(DIGITS.names) and report["grid"]["columns"] == 2
    held_out, train = set(DIGITS.corpus(held_out=True)), set(DIGITS.corpus())
    assert all(p in held_out and p not in train for r in rows for p in r["prompts"])
    assert all(i % 10 == k for k, r in enumerate(rows) for i in r["samples"])
    grid = Image.open(out / "prompts.png")
    assert grid.height == 3 * (1 + 10 * 17) and grid.width > 3 * (1 + 2 * 17)  # 10 rows of 16 px tiles, x3
    text = (out / "report.md").read_text()
    assert "| prompt accuracy | digit-FID |" in text and "- seven: " in text
    assert "prompt accuracy" in capsys.readouterr().out


def test_demo_refuses_a_bundle_of_another_family(ldm_bundle, tmp_path, capsys):
    assert main(["demo", "--model", "ddpm", "--bundle", str(ldm_bundle), "--out", str(tmp_path / "d"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a ldm bundle, not ddpm (give --model ldm)" in err and "\n" not in err
    assert not (tmp_path / "d").exists()


def test_demo_refuses_a_bundle_that_failed_parity(ldm_bundle, tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(ldm_bundle, bundle)
    verify = json.loads((bundle / "verify.json").read_text())
    (bundle / "verify.json").write_text(json.dumps({**verify, "passed": False}))
    assert main(["demo", "--model", "ldm", "--bundle", str(bundle), "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert "did not pass its parity gate" in capsys.readouterr().err


def test_prompt_models_get_the_held_out_captions_of_their_own_caption_set(ldm_bundle):
    """What `edgegen eval`, the demo and the calibration gate prompt with."""
    from edgegen.manifest import read_manifest
    from edgegen.train.evaluate import held_out_prompts, sample_request
    from edgegen.train.ldm_captions import FASHION
    m = read_manifest(ldm_bundle)
    labels, request = sample_request(m, 12)
    assert labels.tolist() == [i % 10 for i in range(12)] and request["prompt"] == held_out_prompts(m, labels)
    m.data["data"]["source"] = "fashion"  # a fashion LDM is prompted with the fashion names, not digit words
    assert held_out_prompts(m, np.array([7]))[0] == FASHION.caption(FASHION.held_out_templates[0], 7)
