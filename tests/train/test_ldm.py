"""The latent diffusion family (issue 15): tiny preset on digits, exported through the parity gate,
prompt -> image on torch / onnxruntime / openvino, stages as in docs/notes/latent-stages.md."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgegen.errors import EdgegenError

PROMPT = "a photo of a sneaker"


@pytest.fixture(scope="module")
def ldm_bundle(family_bundle):
    return family_bundle("ldm")


def test_captions_hold_out_their_templates():
    from edgegen.train.ldm_captions import DIGITS, FASHION
    for caps in (FASHION, DIGITS):
        assert not set(caps.corpus()) & set(caps.corpus(held_out=True))
    assert FASHION.label_prompts()[7] == "a photo of a sneaker"
    assert FASHION.caption("a photo of {a} {name}", 9) == "a photo of an ankle boot"


def test_missing_fashion_package_is_one_line(tmp_path, monkeypatch):
    from edgegen.train import fashion
    from edgegen.train.families import get_preset
    from edgegen.train.ldm import train
    monkeypatch.setenv(fashion.DIR_ENV, str(tmp_path / "nowhere"))
    cfg = get_preset("ldm", "tiny")
    cfg.data.source, cfg.data.image_size = "fashion", 16
    with pytest.raises(EdgegenError, match="apt-get install dataset-fashion-mnist"):
        train(cfg, progress=False)


def test_unlabelled_data_is_refused():
    from edgegen.train.families import get_preset
    from edgegen.train.ldm import check
    cfg = get_preset("ldm", "tiny")
    cfg.data.source = "folder:/tmp/x"
    with pytest.raises(EdgegenError, match="fashion or digits"):
        check(cfg)


def test_stages_follow_the_latent_design(ldm_bundle):
    m = json.loads((ldm_bundle / "manifest.json").read_text())
    p, stats = m["pipeline"], m["training"]["stats"]
    assert p["condition"]["encoder"] == {"role": "text_encoder", "input": "tokens", "output": "context"}
    assert p["generator"]["latent_shape"] == [2, 4, 4]  # tiny: 16x16 digits, 2 latent channels
    assert p["decoder"]["scale"] == p["encoder"]["scale"] == stats["latent_scale"] > 0
    assert m["roles"]["denoiser"]["meta"] == {"time_input": "t", "context_input": "context"}
    assert p["generator"]["defaults"]["clip_x0"] is False  # latents are not bounded like pixels


def test_every_role_passes_the_parity_gate(ldm_bundle):
    verify = json.loads((ldm_bundle / "verify.json").read_text())
    assert verify["passed"]
    assert set(verify["results"]) == {"text_encoder", "vae_encoder", "vae_decoder", "denoiser"}
    den = verify["results"]["denoiser"]["onnx"]["fp32"]
    assert den["trajectory"].startswith("ddim") and den["trajectory_max_abs"] <= 1e-3  # prompt -> image


def test_same_seed_same_samples_on_every_backend(ldm_bundle):
    from edgegen.runtimes.api import open_pipeline
    out = {b: open_pipeline(ldm_bundle, b).sample(3, seed=5, prompt=PROMPT, steps=5)
           for b in ("torch", "onnxruntime", "openvino")}
    assert out["torch"].shape == (3, 1, 16, 16)
    for b in ("onnxruntime", "openvino"):
        np.testing.assert_allclose(out[b], out["torch"], atol=1e-4)
    again = open_pipeline(ldm_bundle, "onnxruntime").sample(3, seed=5, prompt=PROMPT, steps=5)
    assert np.array_equal(again, out["onnxruntime"])


def test_context_conditioning_and_guidance(ldm_bundle):
    from edgegen.runtimes.api import open_pipeline
    pipe = open_pipeline(ldm_bundle, "onnxruntime")
    cond = pipe.condition.prepare(4, prompt=[PROMPT, "a handwritten seven", PROMPT, PROMPT])
    assert cond.labels.tolist() == [0, 1, 0, 0]  # indices into one context row per distinct prompt
    assert cond.context.shape == (2, 24, 16) and cond.null_context.shape == (1, 24, 16)
    assert not np.allclose(cond.context[0], cond.null_context[0])
    a = pipe.sample(2, seed=1, prompt=PROMPT, steps=4, guidance=1.0)
    b = pipe.sample(2, seed=1, prompt=PROMPT, steps=4, guidance=3.0)  # the [y; null] batched call
    c = pipe.sample(2, seed=1, prompt="a handwritten seven", steps=4, guidance=1.0)
    assert not np.allclose(a, b) and not np.allclose(a, c)
    # sample i's result does not depend on the batch it runs in, nor on the other prompts
    d = pipe.sample(2, seed=1, prompt=[PROMPT, "a handwritten seven"], steps=4, guidance=1.0, batch_size=1)
    np.testing.assert_allclose(d[0], a[0], atol=1e-5)


def test_bad_prompts_and_whole_plan_backends_are_one_line(ldm_bundle):
    from edgegen.runtimes.api import open_pipeline
    pipe = open_pipeline(ldm_bundle, "onnxruntime")
    with pytest.raises(EdgegenError, match="empty"):
        pipe.sample(1, prompt="  ")
    with pytest.raises(EdgegenError, match="does not know"):
        pipe.sample(1, prompt="a sneaker \u00e9\u00e9")
