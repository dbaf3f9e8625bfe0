"""Latent text-to-image, image-to-image and inpainting in C++ (ABI 4) on `--backend native`.

The native pipeline (text encoder once per distinct prompt, the context table with CFG batched as
[x; x] / [y; null], the image encoder and plan input registers, the decoder, the kept pixels pasted
back) must give Python openvino's samples within 1e-4 on the tiny LDM and the tiny DDPM (pixel
space). The C API's own plan choice (the stored edit plans, by key) is checked against Python too,
and bad input gets one line through ctypes, the Pipeline and edgegen-run.
"""
from __future__ import annotations

import ctypes
import math
import subprocess

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import native_backend
from edgegen.runtimes.backends.native_backend import F32P, I64P, NativeBackend, SampleParams

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")
TOL = 1e-4
PROMPTS = ["a handwritten seven", "a handwritten one", "a handwritten seven"]  # one repeated: distinct rows


@pytest.fixture(scope="module")
def pipes(tiny_bundle, family_bundle):
    """family -> (manifest, openvino Pipeline, native Pipeline)."""
    out = {}
    for fam, path in (("ldm", family_bundle("ldm")), ("ddpm", tiny_bundle)):
        m = open_manifest(path)
        out[fam] = (m, Pipeline(m, "openvino", threads=1), Pipeline(m, "native", threads=1))
    yield out
    for _, _, nat in out.values():
        nat.backend.close()


def _image_and_mask(m):
    from edgegen.train.data import load_images
    img = load_images("digits", "test", 16).images[3]
    assert img.shape == tuple(m.sample_shape)
    mask = np.zeros(img.shape[1:], np.float32)
    mask[:, img.shape[2] // 2:] = 1  # generate the right half
    return img, mask


def _cond(fam, n):
    return {"prompt": PROMPTS[:n]} if fam == "ldm" else {"labels": [7, 1, 7][:n]}


def test_text_to_image_matches_openvino(pipes):
    m, py, nat = pipes["ldm"]
    seen = {"openvino": [], "native": []}
    a = py.sample(3, seed=3, prompt=PROMPTS, batch_size=2, callback=lambda d, t: seen["openvino"].append((d, t)))
    b = nat.sample(3, seed=3, prompt=PROMPTS, batch_size=2, callback=lambda d, t: seen["native"].append((d, t)))
    assert a.shape == b.shape == (3, *m.sample_shape)
    assert float(np.abs(a - b).max()) <= TOL
    assert seen["native"] == seen["openvino"] and seen["native"][-1] == (100, 100)
    assert float(np.abs(b[0] - b[2]).max()) > 1e-3  # same prompt, other noise
    for kw in (dict(steps=10, guidance=5.0), dict(prompt="a handwritten four", guidance=1.0),
               dict(sampler="ddpm", steps=20)):
        kw = {"prompt": PROMPTS, **kw}
        a, b = py.sample(3, seed=11, **kw), nat.sample(3, seed=11, batch_size=1, **kw)
        assert float(np.abs(a - b).max()) <= TOL, kw
    assert nat.eval_calls > 0  # the native call reports its network calls (timings are benchmarks' business)


@pytest.mark.parametrize("fam", ["ldm", "ddpm"])
def test_image_to_image_and_inpainting_match_openvino(pipes, fam):
    m, py, nat = pipes[fam]
    img, mask = _image_and_mask(m)
    per_sample = np.stack([img, -img, img * 0.5])  # one image per sample
    for edit in (dict(init_image=img, strength=0.6), dict(init_image=per_sample, strength=0.3),
                 dict(init_image=img, mask=mask), dict(init_image=per_sample, mask=mask, strength=0.5)):
        a = py.sample(3, seed=4, batch_size=2, **_cond(fam, 3), **edit)
        b = nat.sample(3, seed=4, batch_size=2, **_cond(fam, 3), **edit)
        what = f"{fam} strength={edit.get('strength')} mask={'mask' in edit}"
        assert float(np.abs(a - b).max()) <= TOL, what
        if "mask" in edit:  # kept pixels equal the input exactly
            keep = np.broadcast_to(mask == 0, b.shape)
            src = np.broadcast_to(edit["init_image"], b.shape)
            assert np.array_equal(b[keep], src[keep]), what
            assert not np.array_equal(b[~keep], src[~keep]), what


def _c_params(m, n, seed, tokens=None, img=None, mask=None, strength=math.nan, labels=None):
    """SampleParams for the C API's own choice of plan (no plan_json): the stored edits by key."""
    lib = native_backend._load()
    sp = SampleParams()
    lib.edgegen_sample_params_init(ctypes.byref(sp))
    sp.n, sp.seed, sp.strength = n, seed, strength
    keep = []
    if tokens is not None:
        keep.append(tokens)
        sp.prompt_tokens, sp.prompt_len, sp.prompt_count = tokens.ctypes.data_as(I64P), tokens.shape[1], len(tokens)
    if labels is not None:
        keep.append(labels)
        sp.labels = labels.ctypes.data_as(I64P)
    if img is not None:
        keep.append(img)
        sp.init_image, sp.image_count = img.ctypes.data_as(F32P), 1
        sp.image_channels, sp.image_height, sp.image_width = img.shape
    if mask is not None:
        keep.append(mask)
        sp.mask, (sp.mask_height, sp.mask_width) = mask.ctypes.data_as(F32P), mask.shape
    return sp, keep


def _c_sample(backend, sp):
    lib = native_backend._load()
    count = ctypes.c_size_t()
    st = lib.edgegen_sample_count(backend._handle, ctypes.byref(sp), ctypes.byref(count))
    if st != 0:
        return st, lib.edgegen_last_error().decode(), None
    out = np.empty(count.value, np.float32)
    st = lib.edgegen_sample(backend._handle, ctypes.byref(sp), out.ctypes.data_as(F32P), out.size, None)
    return st, lib.edgegen_last_error().decode() if st else "", out


def test_c_api_runs_the_stored_edit_plans(pipes):
    """Without plan_json the library picks the stored plan by key (ddim-50-noclip-strength0.6, ...)."""
    m, py, nat = pipes["ldm"]
    assert {"ddim-50-noclip-strength0.6", "ddim-50-noclip-inpaint"} <= set(m.data["plans"])
    img, mask = _image_and_mask(m)
    tokens = py.condition.text.encode_batch(["a handwritten two"])
    sp, keep = _c_params(m, 2, 9, tokens, img)
    st, err, out = _c_sample(nat.backend, sp)  # strength NaN: 0.6, as Python's default
    assert st == 0, err
    want = py.sample(2, seed=9, prompt="a handwritten two", init_image=img)
    assert float(np.abs(out.reshape(want.shape) - want).max()) <= TOL
    sp, keep = _c_params(m, 2, 9, tokens, img, strength=0.45)
    st, err, _ = _c_sample(nat.backend, sp)
    assert st == 5 and "strength 0.45" in err and "ddim-50-noclip-strength0.6" in err and "--plans ddim-50@strength0.45" in err
    assert "\n" not in err
    sp, keep = _c_params(m, 2, 9, tokens, img, mask)  # the stored "-inpaint" plan (all 50 steps)
    st, err, out = _c_sample(nat.backend, sp)
    assert st == 0, err
    keep_px = np.broadcast_to(mask == 0, (2, *img.shape))
    assert np.array_equal(out.reshape(2, *img.shape)[keep_px], np.broadcast_to(img, (2, *img.shape))[keep_px])


@pytest.mark.parametrize("edit, words", [
    (dict(init_image=np.zeros((1, 8, 8), np.float32)), "the init image is 1x8x8, this model takes 1x16x16"),
    (dict(init_image=np.zeros((3, 16, 16), np.float32)), "the init image is 3x16x16"),
    (dict(init_image=np.zeros((2, 1, 16, 16), np.float32)), "image_count must be 1"),
    (dict(init_image=np.full((1, 16, 16), 1.5, np.float32)), "outside the data range"),
    (dict(init_image="img", mask=np.ones((8, 16), np.float32)), "the mask is 8x16, it must be 16x16 like the image"),
    (dict(init_image="img", mask=np.full((16, 16), 0.5, np.float32)), "the mask must be binary"),
    (dict(init_image="img", strength=0.0), "strength must be in (0, 1], got 0"),
    (dict(init_image="img", strength=1.5), "strength must be in (0, 1], got 1.5"),
    (dict(mask=np.ones((16, 16), np.float32)), "need --init-image"),
])
def test_bad_image_inputs_one_line(pipes, edit, words):
    m, py, nat = pipes["ldm"]
    img, _ = _image_and_mask(m)
    edit = {k: img if isinstance(v, str) else v for k, v in edit.items()}
    with pytest.raises(EdgegenError) as e:
        nat.sample(3, prompt="a handwritten two", **edit)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert nat.sample(1, prompt="a handwritten two", steps=10).shape == (1, *m.sample_shape)  # still usable


def test_bad_inputs_through_the_c_api(pipes, dalle_bundle):
    m, py, nat = pipes["ldm"]
    img, mask = _image_and_mask(m)
    tokens = py.condition.text.encode_batch(["a handwritten two"])
    for kw, status, words in [
        (dict(), 1, "this model takes a prompt"),
        (dict(tokens=np.zeros((1, 4), np.int64)), 1, "the prompt is empty"),
        (dict(tokens=np.full((1, 40), 18, np.int64)), 1, "more than this model's text length"),
        (dict(tokens=np.array([[18, 4000]], np.int64)), 1, "out of range"),
        (dict(tokens=tokens, labels=np.zeros(2, np.int64)), 1, "give a prompt or labels, not both"),
        (dict(tokens=tokens, img=img, mask=mask, strength=0.6), 5, "--plans ddim-50@strength0.6@inpaint"),
        (dict(tokens=tokens, strength=0.6), 1, "mask and strength need an init image"),
    ]:
        sp, keep = _c_params(m, 2, 0, **kw)
        st, err, _ = _c_sample(nat.backend, sp)
        assert st == status and words in err and "\n" not in err, (kw.keys(), err)
    dm, dd, dn = pipes["ddpm"]  # a prompt on a model without a text encoder
    sp, keep = _c_params(dm, 1, 0, tokens=tokens)
    st, err, _ = _c_sample(dn.backend, sp)
    assert st == 1 and "takes no prompt tokens" in err
    tok = NativeBackend(open_manifest(dalle_bundle), "transformer")  # image inputs on a token model
    try:
        sp, keep = _c_params(tok.manifest, 1, 0, tokens=np.array([[5, 9, 14]], np.int64), img=img)
        codes = np.empty(int(tok.manifest.generator["image_tokens"]), np.int64)
        sp.codes_out, sp.codes_count = codes.ctypes.data_as(I64P), codes.size
        lib = native_backend._load()
        st = lib.edgegen_sample(tok._handle, ctypes.byref(sp), None, 0, None)
        assert st == 1 and "need a diffusion model" in lib.edgegen_last_error().decode()
    finally:
        tok.close()


def test_edgegen_run_init_image_and_mask(pipes, tmp_path):
    """The C app path: edgegen-run --prompt-tokens --init-image PNG --mask PNG --strength = Python's samples."""
    from edgegen.images import read_image, read_mask, save_image
    from PIL import Image
    m, py, nat = pipes["ldm"]
    img, mask = _image_and_mask(m)
    save_image(tmp_path / "in.png", img)
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    x = read_image(tmp_path / "in.png", m.sample_shape)
    mk = read_mask(tmp_path / "mask.png", m.sample_shape[1:])
    ids = ",".join(str(int(i)) for i in py.condition.text.encode_batch(["a handwritten two"])[0] if i != 0)
    run = native_backend.library_path().parent / "edgegen-run"
    for extra, edit in [(["--strength", "0.6"], dict(strength=0.6)),
                        (["--mask", str(tmp_path / "mask.png")], None)]:
        raw = tmp_path / "x.f32"
        r = subprocess.run([str(run), str(m.root), "--prompt-tokens", ids, "--n", "2", "--seed", "2", "--threads", "1",
                            "--init-image", str(tmp_path / "in.png"), *extra, "--raw", str(raw),
                            "--out", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        got = np.fromfile(raw, np.float32).reshape(2, *m.sample_shape)
        if edit is not None:
            want = py.sample(2, seed=2, prompt="a handwritten two", init_image=x, **edit)
            assert float(np.abs(got - want).max()) <= TOL
        else:  # the stored -inpaint plan: the kept pixels are the PNG's
            keep = np.broadcast_to(mk == 0, got.shape)
            assert np.array_equal(got[keep], np.broadcast_to(x, got.shape)[keep])
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(tmp_path / "grey.png")
    for extra, words in [(["--mask", str(tmp_path / "grey.png")], "is not binary"),
                         (["--strength", "0.6", "--mask", str(tmp_path / "in.png"), "--init-image", "/nonexistent.png"],
                          "cannot read /nonexistent.png")]:
        r = subprocess.run([str(run), str(m.root), "--prompt-tokens", ids, "--init-image", str(tmp_path / "in.png"),
                            *extra, "--out", str(tmp_path / "y.png")], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1, r.stderr
