"""The prompt -> image loops a user would write for a latent bundle (edgegen/profiling/baselines_ldm.py)
and benchmarks/frontier_ldm.py's bookkeeping. Tiny LDM preset; no timing asserted."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.profiling import baselines
from edgegen.runtimes.api import open_manifest, open_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ldm_bundle(family_bundle):
    return family_bundle("ldm")


def _prompts(bundle):  # three of the bundle's stored prompts, not in label order
    return open_manifest(bundle).stage("condition")["label_prompts"][2:5]


def _job(bundle, kind, sampler, steps, **kw):
    prompts = _prompts(bundle)
    return {"kind": kind, "bundle": str(bundle), "precision": "fp32", "batch": len(prompts), "sampler": sampler,
            "steps": steps, "seed": 3, "threads": 1, "prompts": prompts, **kw}


def _edgegen(bundle, sampler, steps):
    prompts = _prompts(bundle)
    return open_pipeline(bundle, "onnxruntime", threads=1).sample(len(prompts), seed=3, batch_size=len(prompts),
                                                                  prompt=prompts, sampler=sampler, steps=steps)


def test_torch_ddim_and_diffusers_dpmsolver_compute_edgegens_images(ldm_bundle):
    for kind, sampler in (("torch-eager", "ddim"), ("diffusers-ort", "dpmpp_2m")):
        state, first_call, run = baselines.make(_job(ldm_bundle, kind, sampler, 4))
        first_call()
        _, _, calls, _ = run()
        assert calls == 4  # one network call per step (timings belong in benchmarks/)
        want = _edgegen(ldm_bundle, sampler, 4)
        assert state["samples"].shape == want.shape == (3, *open_manifest(ldm_bundle).sample_shape)
        assert np.abs(state["samples"] - want).max() < 1e-4, kind


def test_diffusers_ddim_steps_its_own_way_and_guidance_matters(ldm_bundle):
    state, _, run = baselines.make(_job(ldm_bundle, "diffusers-ort", "ddim", 4))
    run()
    ours = _edgegen(ldm_bundle, "ddim", 4)
    # diffusers' DDIM steps to t - T // N, not to edgegen's next timestep: close, not equal
    assert 1e-4 < np.abs(state["samples"] - ours).max()
    s1, _, run1 = baselines.make(_job(ldm_bundle, "torch-eager", "ddim", 4, guidance=1.0))
    run1()
    assert np.abs(s1["samples"] - ours).max() > 1e-3  # the bundle's default guidance is not 1: CFG is applied


def test_refusals_are_one_line(ldm_bundle):
    m = open_manifest(ldm_bundle)
    assert "ddim" in baselines.unsupported(m, "unipc", "diffusers-ort")
    assert "torch-compile" in baselines.unsupported(m, "ddim", "torch-compile")
    assert baselines.unsupported(m, "dpmpp_2m", "diffusers-ort") is None
    with pytest.raises(EdgegenError, match="2 prompts for a batch of 3"):
        baselines.make({**_job(ldm_bundle, "diffusers-ort", "ddim", 4), "prompts": _prompts(ldm_bundle)[:2]})


@pytest.fixture(scope="module")
def frontier_ldm():
    spec = importlib.util.spec_from_file_location("frontier_ldm", ROOT / "benchmarks" / "frontier_ldm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fp32_rows_are_reused_only_for_the_same_measurement(frontier_ldm, tmp_path):
    bundle = tmp_path / "bundle"  # only its manifest's bytes are compared
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"family": "ldm"}')
    sha = frontier_ldm.manifest_sha(bundle)
    res = {"manifest_sha256": sha, "n": 500, "seed": 0, "batch_size": 100, "backend": "onnxruntime", "guidance": 3.0,
           "rows": [{"sampler": "ddim", "steps": 50, "fid_raw": 200.0, "accuracy_raw": 0.9, "fid": 210.0,
                     "accuracy": 0.89, "seconds": 1.0},
                    {"sampler": "ddim", "steps": 50, "seed": 1, "fid_raw": 1.0, "accuracy_raw": 1.0, "fid": 1.0,
                     "accuracy": 1.0, "seconds": 1.0}]}
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(res))
    rows, why = frontier_ldm.reused_fp32(bundle, path)
    assert rows["ddim-50"]["fid"] == 200.0 and rows["ddim-50"]["accuracy"] == 0.9 and len(rows) == 1
    for key, value in (("manifest_sha256", "0" * 64), ("n", 100), ("guidance", 1.0)):
        path.write_text(json.dumps({**res, key: value}))
        rows, why = frontier_ldm.reused_fp32(bundle, path)
        assert rows == {} and key in why


def test_reduced_precisions_are_scored_on_the_fast_plans_within_budget(frontier_ldm):
    ref = {"fid": 200.0, "accuracy": 0.9}
    rows = {"q/onnxruntime/fp32/ddim-50": ref,
            "q/onnxruntime/fp32/ddim-10": {"fid": 300.0, "accuracy": 0.89},   # FID over budget
            "q/onnxruntime/fp32/ddim-20": {"fid": 205.0, "accuracy": 0.9},    # within, but 20 steps
            "q/onnxruntime/fp32/dpmpp_2m-10": {"fid": 215.0, "accuracy": 0.895},
            "q/onnxruntime/fp32/dpmpp_2m-5": {"fid": 190.0, "accuracy": 0.88},  # accuracy 2 points down
            "q/onnxruntime/fp32/unipc-5": {"fid": 219.0, "accuracy": 0.95}}
    assert frontier_ldm.reduced_plans(rows) == [("unipc", 5), ("dpmpp_2m", 10)]  # fewest steps first
    assert frontier_ldm.reduced_plans({}) == frontier_ldm.PLANS  # no fp32 rows: every plan
