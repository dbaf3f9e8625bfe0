"""INT8 calibration of the latent diffusion denoiser (issue 15): the calibration set holds the text
contexts the denoiser was fed, and the gate prompts with held-out captions (prompt accuracy and
the data set's FID against fp32). Tiny LDM preset (digits), shared with tests/train/test_ldm.py."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgegen.calibration import record
from edgegen.calibration.calibrate import CalibrateRequest, calibrate
from edgegen.calibration.gate import Budget, GateSettings
from edgegen.manifest import read_manifest
from edgegen.runtimes.api import Pipeline, open_pipeline

from .conftest import FAST_GATE


@pytest.fixture(scope="module")
def ldm_bundle(family_bundle):
    return family_bundle("ldm")


def test_recorded_rows_are_the_denoisers_real_inputs_contexts_included(ldm_bundle):
    pipe = open_pipeline(ldm_bundle, "onnxruntime")
    fed: list[dict] = []  # every network call's inputs, as the executor built them
    run = pipe.backend.run
    pipe.backend.run = lambda inputs: fed.append({k: np.array(v) for k, v in inputs.items()}) or run(inputs)
    cs = record.record(pipe, 40)
    pipe.backend.run = run
    n_traj, steps = cs.provenance["trajectories"], cs.provenance["plan_steps"]
    assert len(fed) == steps and fed[0]["x"].shape[0] == 2 * n_traj  # one batch, guided: [x; x]
    ctx = cs.inputs["context"]
    assert ctx.shape == (40, *fed[0]["context"].shape[1:]) and ctx.dtype == np.float32
    uncond = record.unconditional_rows(40, 10)
    assert cs.provenance["guidance"] != 1.0 and cs.provenance["null_context_rows"] == int(uncond.sum()) == 20
    for r, (s, j) in enumerate(record.select_rows(40, steps, n_traj)):
        call = fed[s]
        assert np.array_equal(cs.inputs["x"][r], call["x"][j]) and cs.inputs["t"][r] == call["t"][j]
        # the conditional half of the guided call fed sample j's prompt context, the other half the null one
        assert np.array_equal(ctx[r], call["context"][n_traj + j] if uncond[r] else call["context"][j])
    # the prompt rows are the text encoder's output for the stored prompt of the trajectory's class
    labels = np.arange(10)
    want = pipe.condition.prepare(10, labels)
    for r in np.flatnonzero(~uncond):
        assert np.allclose(ctx[r], want.context[record.select_rows(40, steps, n_traj)[r][1] % 10], atol=1e-6)
    assert np.allclose(ctx[uncond], want.null_context[0], atol=1e-6)
    assert cs.provenance["labels_covered"] == list(range(10))  # every class has prompt rows
    assert cs.provenance["prompts"] == pipe.condition.prompts(10, labels)


def test_calibrate_ldm_gates_prompt_accuracy_and_fid(ldm_bundle, tmp_path, evaluator, evaluator_cache, monkeypatch):
    from edgegen.train.evaluate import gate_scorer
    monkeypatch.setenv("EDGEGEN_CACHE", str(evaluator_cache))  # the session's digit evaluator
    bundle = tmp_path / "ldm-tiny"
    shutil.copytree(ldm_bundle, bundle)
    scorer, reason = gate_scorer(read_manifest(bundle))
    assert scorer is not None and reason is None
    report = calibrate(CalibrateRequest(bundle, ["onnx", "openvino"], calls=32, budget=Budget(None, None, 1.0),
                                        gate=GateSettings(**FAST_GATE), progress=False, scorer=scorer,
                                        mixed_precision=False))
    m = read_manifest(bundle, verify=True)
    assert "int8" in m.formats("denoiser")["onnx"] and "int8" in m.formats("denoiser")["openvino"]
    for role in ("text_encoder", "vae_decoder", "vae_encoder"):  # only the denoiser is quantized
        assert all("int8" not in per for per in m.formats(role).values())
    # the artifact holds the context input, and its ranges cover it
    from edgegen.calibration import artifact
    art = artifact.load(bundle / "calibration")
    assert art.calib.inputs["context"].shape[0] == 32 and "context" in art.ranges
    assert report["calibration"]["context_input"] == "context"
    for fmt in ("onnx", "openvino"):
        r = report["formats"][fmt]
        assert r["accuracy"]["metric"] == "prompt accuracy" and r["accuracy"]["prompts"] == "held-out templates"
        assert r["fid"]["metric"] == "digit-FID" and np.isfinite(r["fid"]["int8"]) and r["fid"]["n"] == FAST_GATE["n"]
        assert 0.0 <= r["accuracy"]["int8"] <= 1.0 and r["drift"]["mean_abs"] >= 0.0
    assert report["naive_baseline"]["accuracy"]["metric"] == "prompt accuracy"  # same gate, Gaussian calibration
    # the int8 denoiser samples from a prompt next to the fp32 text encoder and decoder
    from edgegen.runtimes.backends import create_backend
    for backend in ("onnxruntime", "openvino"):
        pipe = Pipeline(m, create_backend(backend, m, "denoiser", "int8"))
        got = pipe.sample(4, seed=1, prompt="a handwritten seven", steps=10)
        # open_pipeline(..., "int8"): the denoiser int8, the other roles (no int8 files) fp32
        assert np.array_equal(open_pipeline(bundle, backend, "int8").sample(4, seed=1, prompt="a handwritten seven",
                                                                            steps=10), got)
        ref = open_pipeline(bundle, backend).sample(4, seed=1, prompt="a handwritten seven", steps=10)
        assert got.shape == ref.shape and np.isfinite(got).all() and 0 < np.abs(got - ref).mean() < 0.5
    assert json.loads((bundle / "calibration" / "report.json").read_text())["passed"]
