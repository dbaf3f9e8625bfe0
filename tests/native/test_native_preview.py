"""Previews and per-stage devices on `--backend native` (issue 17, ABI 5).

The preview is the plan's x0 register (plans.py "preview"; the LDM's noclip DDIM computes it in its
steps' preview_ops), decoded by the bundle's decoder on latent models: the C++ library must hand the
same images at the same steps as the Python interpreter (within 1e-4), cancel like the progress
callback, and refuse a bundle or plan that has no preview with a status and one line.
Per-stage devices: CPU per stage equals the default exactly, virtual devices over the CPU run, a
missing device names its stage.
"""
from __future__ import annotations

import ctypes
import json

import numpy as np
import pytest

from edgegen.errors import Cancelled, EdgegenError
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import native_backend
from edgegen.runtimes.backends.native_backend import F32P, I64P, NativeBackend, PreviewFn, SampleParams

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")
TOL = 1e-4
PROMPTS = ["a handwritten seven", "a handwritten one", "a handwritten seven"]


@pytest.fixture(scope="module")
def pipes(tiny_bundle, family_bundle):
    """family -> (manifest, openvino Pipeline (the Python interpreter), native Pipeline)."""
    out = {}
    for fam, path in (("ldm", family_bundle("ldm")), ("ddpm", tiny_bundle)):
        m = open_manifest(path)
        out[fam] = (m, Pipeline(m, "openvino", threads=1), Pipeline(m, "native", threads=1))
    yield out
    for _, _, nat in out.values():
        nat.backend.close()


def _cond(fam: str) -> dict:
    return {"prompt": PROMPTS} if fam == "ldm" else {"labels": [7, 1, 7]}


@pytest.mark.parametrize("fam", ["ddpm", "ldm"])
def test_previews_match_the_python_interpreter(pipes, fam):
    m, py, nat = pipes[fam]
    seen = {"openvino": [], "native": []}
    outs = {}
    for name, pipe in (("openvino", py), ("native", nat)):
        outs[name] = pipe.sample(3, seed=2, batch_size=2, steps=14, **_cond(fam), preview_every=4,
                                 preview=lambda d, t, im, s=seen[name]: s.append((d, t, im)))
    a, b = seen["openvino"], seen["native"]
    assert [(d, t, im.shape) for d, t, im in a] == [(d, t, im.shape) for d, t, im in b]
    assert [d for d, _, _ in b] == [4, 8, 12, 16, 20, 24, 28] and b[0][1] == 28  # 2 batches x 14 steps
    assert b[0][2].shape == (2, *m.sample_shape) and b[-1][2].shape == (1, *m.sample_shape)  # decoded images
    for (d, _, x), (_, _, y) in zip(a, b):
        assert float(np.abs(x - y).max()) <= TOL, f"{fam} preview at step {d}"
    assert float(np.abs(outs["openvino"] - outs["native"]).max()) <= TOL
    assert float(np.abs(b[0][2] - b[2][2]).max()) > 1e-3  # the prediction moves between steps
    # the preview does not change the samples
    ref = nat.sample(3, seed=2, batch_size=2, steps=14, **_cond(fam))
    np.testing.assert_array_equal(ref, outs["native"])


def test_preview_false_cancels_and_the_bundle_stays_usable(pipes):
    _, _, nat = pipes["ddpm"]
    seen = []

    def stop_at_3(done, total, images):
        seen.append(done)
        return done < 3

    with pytest.raises(Cancelled, match="cancelled by the preview callback after 3 of 10 steps"):
        nat.sample(2, seed=0, steps=10, preview=stop_at_3)
    assert seen == [1, 2, 3]
    assert nat.sample(2, seed=0, steps=10).shape[0] == 2


def _raw_sample(pipe, sp: SampleParams) -> tuple[int, str]:
    lib = native_backend._load()
    out = np.empty(10 ** 6, np.float32)
    count = ctypes.c_size_t()
    status = lib.edgegen_sample_count(pipe.backend._handle, ctypes.byref(sp), ctypes.byref(count))
    if status == 0:
        status = lib.edgegen_sample(pipe.backend._handle, ctypes.byref(sp), out.ctypes.data_as(F32P), count.value, None)
    return status, lib.edgegen_last_error().decode()


def test_a_plan_without_x0_is_refused_through_ctypes(pipes):
    _, _, nat = pipes["ddpm"]
    plan = nat.plan(steps=5).to_json()
    plan.pop("preview")
    for st in plan["steps"]:
        st.pop("preview_ops", None)
    calls = []
    fn = PreviewFn(lambda *a: calls.append(a) or 0)
    text = json.dumps(plan).encode()
    sp = SampleParams()
    native_backend._load().edgegen_sample_params_init(ctypes.byref(sp))
    sp.plan_json, sp.preview = text, fn
    status, err = _raw_sample(nat, sp)
    assert status == 5 and "no preview" in err and "\n" not in err  # EDGEGEN_ERR_UNSUPPORTED
    assert not calls
    sp.preview = PreviewFn()  # NULL: the same plan samples
    assert _raw_sample(nat, sp)[0] == 0


def test_token_models_have_no_preview(dalle_bundle):
    pipe = Pipeline(open_manifest(dalle_bundle), "native", threads=1)
    try:
        with pytest.raises(EdgegenError, match="no preview for token models"):
            pipe.sample(1, prompt="a handwritten seven", preview=lambda *a: None)
        # and the library's own answer (a C caller)
        sp = SampleParams()
        lib = native_backend._load()
        lib.edgegen_sample_params_init(ctypes.byref(sp))
        fn = PreviewFn(lambda *a: 0)
        sp.preview = fn
        codes = np.zeros(int(pipe.manifest.generator["image_tokens"]), np.int64)
        sp.codes_out, sp.codes_count = codes.ctypes.data_as(I64P), codes.size
        status = lib.edgegen_sample(pipe.backend._handle, ctypes.byref(sp), None, 0, None)
        err = lib.edgegen_last_error().decode()
        assert status == 5 and err.startswith("no preview for token models") and "\n" not in err
    finally:
        pipe.backend.close()


def test_stage_devices(pipes, family_bundle):
    m, _, nat = pipes["ldm"]
    ref = nat.sample(2, seed=1, prompt=PROMPTS[:2], steps=10)
    cpu = Pipeline(m, "native", threads=1, text_encoder_device="CPU", denoiser_device="CPU", decoder_device="CPU")
    try:
        np.testing.assert_array_equal(cpu.sample(2, seed=1, prompt=PROMPTS[:2], steps=10), ref)
    finally:
        cpu.backend.close()
    auto = Pipeline(m, "native", threads=1, denoiser_device="AUTO", decoder_device="HETERO:CPU")
    try:
        assert float(np.abs(auto.sample(2, seed=1, prompt=PROMPTS[:2], steps=10) - ref).max()) <= 1e-5
    finally:
        auto.backend.close()
    with pytest.raises(EdgegenError, match=r"^the decoder stage on device 'GPU': .*GPU"):
        Pipeline(m, "native", threads=1, decoder_device="GPU")
    with pytest.raises(EdgegenError, match=r"^the text encoder stage on device 'NPU'"):
        Pipeline(m, "native", threads=1, text_encoder_device="NPU")
