"""The token loop in C++ (ABI 3): VQ-VAE prior and DALL-E bundles on `--backend native`.

Tokens must be identical to Python's (openvino and onnxruntime backends running tokens.py) for
every sampling setting and any batch size; decoded images within 1e-4. Sampling from logits is
also compared directly (edgegen_next_tokens vs tokens.next_tokens), on logits made to have ties
and near-boundary probabilities.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from edgegen.errors import Cancelled, EdgegenError
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import native_backend
from edgegen.runtimes.backends.native_backend import NativeBackend
from edgegen.runtimes.tokens import TokenSampling, next_tokens

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")
TOL = 1e-4
SETTINGS = [dict(temperature=0.0), dict(), dict(top_k=5), dict(top_p=0.8, temperature=0.7),
            dict(top_k=3, top_p=0.5, temperature=1.3)]


@pytest.mark.parametrize("vocab", [1, 2, 7, 9, 32, 129, 300, 1000])
def test_next_tokens_same_as_python(vocab):
    rng = np.random.default_rng(vocab)
    logits = rng.normal(size=(64, vocab)).astype(np.float32) * 3
    logits[:8] = np.round(logits[:8])  # ties: the order must break them by index
    logits[8:12] = 0.0  # all equal
    u = (rng.integers(0, 2**32, 64).astype(np.float64) + 0.5) * 2.0**-32
    u[:2] = [0.5 * 2.0**-32, (2**32 - 0.5) * 2.0**-32]  # the extremes a Philox word gives
    for cfg in [TokenSampling(0.0), TokenSampling(1.0), TokenSampling(0.5, 3), TokenSampling(1.0, None, 0.3),
                TokenSampling(2.0, 10, 0.9), TokenSampling(1.0, vocab + 5, 0.999999), TokenSampling(1e-3)]:
        want = next_tokens(logits, u, cfg)
        got = native_backend.next_tokens(logits, u, cfg.temperature, cfg.top_k or 0, cfg.top_p)
        assert np.array_equal(want, got), cfg


def test_next_tokens_refuses_bad_settings():
    z, u = np.zeros((1, 4), np.float32), np.full(1, 0.5)
    for kw, msg in [((-1.0, 0, 1.0), "temperature"), ((1.0, -2, 1.0), "top-k"), ((1.0, 0, 0.0), "top-p"),
                    ((float("nan"), 0, 1.0), "temperature")]:
        with pytest.raises(EdgegenError, match=msg):
            native_backend.next_tokens(z, u, *kw)
    with pytest.raises(EdgegenError, match="uniforms"):
        native_backend.next_tokens(z, np.zeros(1), 1.0, 0, 1.0)


@pytest.fixture(scope="module", params=["vqvae", "dalle"])
def bundle(request, vq_bundle, dalle_bundle):
    m = open_manifest(vq_bundle if request.param == "vqvae" else dalle_bundle)
    nat = Pipeline(m, "native")
    yield m, nat
    nat.backend.close()


def _codes(pipe, n, seed, batch_size, **kw):
    return pipe.generator.generate(pipe.condition.prepare(n, None), seed, batch_size, None, **kw)


@pytest.mark.parametrize("python", ["openvino", "onnxruntime"])
def test_tokens_identical_to_python_for_any_batch(bundle, python):
    m, nat = bundle
    py = Pipeline(m, python)
    n = 5
    for kw in SETTINGS if python == "openvino" else SETTINGS[::2]:
        want = _codes(py, n, 11, 64, **kw)  # one Python batch; the native batches split it
        for b in (1, 2, 3, 64):
            got = _codes(nat, n, 11, b, **kw)
            assert np.array_equal(want, got), f"{m.family} {kw} batch {b}: {int((want != got).sum())} tokens differ"


def test_decoded_images_within_tolerance(bundle):
    m, nat = bundle
    py = Pipeline(m, "openvino")
    a = py.sample(6, seed=5, batch_size=6, top_k=8)
    nat.reset_counters()
    b = nat.sample(6, seed=5, batch_size=5, top_k=8)
    assert a.shape == b.shape == (6, *m.sample_shape)
    assert float(np.abs(a - b).max()) <= TOL
    assert nat.eval_calls == 2 * m.generator["image_tokens"]  # 2 batches, one call per token


def test_labels_and_prompts(bundle):
    m, nat = bundle
    py = Pipeline(m, "openvino")
    if m.family == "dalle":  # tokenized in Python, ids through the C API, per-sample prompts
        prompts = ["a handwritten seven", "a handwritten one", "a handwritten seven"]
        kw = dict(prompt=prompts)
    else:
        kw = dict(labels=[3, 3, 9])
    a, b = py.sample(3, seed=2, **kw), nat.sample(3, seed=2, batch_size=2, **kw)
    assert float(np.abs(a - b).max()) <= TOL


def test_progress_and_cancel(bundle):
    m, nat = bundle
    n_tok = m.generator["image_tokens"]
    seen = []
    x = nat.sample(3, seed=2, batch_size=2, callback=lambda d, t: seen.append((d, t)))
    assert seen == [(d, 2 * n_tok) for d in range(1, 2 * n_tok + 1)]
    with pytest.raises(Cancelled, match=f"after 5 of {2 * n_tok} steps"):
        nat.sample(3, seed=2, batch_size=2, callback=lambda d, t: d < 5)
    assert np.array_equal(x, nat.sample(3, seed=2, batch_size=2))  # the bundle stays usable


def test_cli_sample_native_matches_openvino(vq_bundle, tmp_path):
    from edgegen.cli import main
    out, ref = tmp_path / "n.png", tmp_path / "r.png"
    for backend, path in (("native", out), ("openvino", ref)):
        assert main(["sample", str(vq_bundle), "--backend", backend, "--n", "4", "--top-k", "6", "--quiet",
                     "--out", str(path)]) == 0
    assert np.abs(np.load(out.with_suffix(".npy")) - np.load(ref.with_suffix(".npy"))).max() <= TOL


def _params(lib, n=2):
    sp = native_backend.SampleParams()
    lib.edgegen_sample_params_init(ctypes.byref(sp))
    sp.n = n
    return sp


def _status(lib, handle, sp, out=None, count=0):
    st = lib.edgegen_sample(handle, ctypes.byref(sp), out, count, None)
    return st, lib.edgegen_last_error().decode()


def test_bad_prompts_and_codes_through_the_c_api(dalle_bundle, vq_bundle):
    """Each bad input: a status and one line, the same words as Python's text.py where it has them."""
    lib = native_backend._load()
    d, v = NativeBackend(open_manifest(dalle_bundle), "transformer"), NativeBackend(open_manifest(vq_bundle), "prior")
    info = native_backend.StageInfo()
    assert lib.edgegen_bundle_stages(d._handle, ctypes.byref(info)) == 0
    assert (info.condition, info.generator, info.has_decoder) == (b"prompt", b"tokens", 1)
    L, pad = info.prompt_length, info.pad_id
    codes = np.zeros(2 * info.image_tokens, np.int64)

    def with_prompt(ids, count=1):
        sp = _params(lib)
        arr = np.ascontiguousarray(ids, dtype=np.int64)
        sp.prompt_tokens, sp.prompt_len, sp.prompt_count = arr.ctypes.data_as(native_backend.I64P), arr.shape[-1], count
        sp.codes_out, sp.codes_count = codes.ctypes.data_as(native_backend.I64P), codes.size
        return _status(lib, d._handle, sp)

    cases = [
        (with_prompt(np.full(L, pad)), "the prompt is empty"),
        (with_prompt(np.full(L + 3, 5)), f"is {L + 3} tokens long, more than this model's text length {L}"),
        (with_prompt([5, 10**6]), "prompt token id 1000000 is out of range"),
        (with_prompt([5, -1]), "prompt token id -1 is out of range"),
        (with_prompt(np.full((3, 2), 5), count=3), "prompt_count must be 1"),
        (_status(lib, d._handle, _params(lib), None, 0), "out is NULL"),
    ]
    sp = _params(lib)  # no prompt at all on a prompt model
    sp.codes_out, sp.codes_count = codes.ctypes.data_as(native_backend.I64P), codes.size
    cases.append((_status(lib, d._handle, sp), "takes a prompt: pass its text in prompts, or its token ids"))
    sp = _params(lib)  # a prompt on a label-token model
    arr = np.array([1, 2], np.int64)
    sp.prompt_tokens, sp.prompt_len = arr.ctypes.data_as(native_backend.I64P), 2
    codes_v = np.zeros(2 * v.manifest.generator["image_tokens"], np.int64)
    sp.codes_out, sp.codes_count = codes_v.ctypes.data_as(native_backend.I64P), codes_v.size
    cases.append((_status(lib, v._handle, sp), "class-conditional: it takes labels, not prompt tokens"))
    sp = _params(lib)  # codes_count that does not match
    sp.codes_out, sp.codes_count = codes.ctypes.data_as(native_backend.I64P), 3
    cases.append((_status(lib, v._handle, sp), "codes_count is 3"))
    sp = _params(lib)  # a plan on a token model
    sp.sampler = b"ddim"
    cases.append((_status(lib, v._handle, sp), "token loop: it has no sampler plan"))
    for (status, msg), want in cases:
        assert status == 1 and want in msg and "\n" not in msg, (status, msg, want)
    bad = np.full(v.manifest.generator["image_tokens"], 99, np.int64)  # codebook is 32
    out = np.zeros(int(np.prod(v.manifest.sample_shape)), np.float32)
    assert lib.edgegen_decode(v._handle, bad.ctypes.data_as(native_backend.I64P), bad.size, 1, 1,
                              out.ctypes.data_as(native_backend.F32P), out.size) == 1
    assert "outside the codebook" in lib.edgegen_last_error().decode()
    with pytest.raises(EdgegenError, match="top-p must be in"):
        Pipeline(open_manifest(vq_bundle), "native").sample(1, top_p=1.5)
    d.close()
    v.close()


def test_tokenize_then_edgegen_run_gives_pythons_codes(dalle_bundle, tmp_path, capsys):
    """The C app path: `edgegen tokenize` -> `edgegen-run --prompt-tokens --codes` = Python's tokens."""
    import subprocess

    from edgegen.cli import main
    run = native_backend.library_path().parent / "edgegen-run"
    if not run.is_file():
        pytest.skip(f"no {run} (make native)")
    assert main(["tokenize", str(dalle_bundle), "a handwritten seven"]) == 0
    ids = capsys.readouterr().out.strip()
    assert main(["tokenize", str(dalle_bundle), ""]) == 2
    assert "the prompt is empty" in capsys.readouterr().err
    codes = tmp_path / "codes.txt"
    subprocess.run([str(run), str(dalle_bundle), "--prompt-tokens", ids, "--n", "3", "--seed", "4", "--top-k", "7",
                    "--batch-size", "2", "--codes", str(codes), "--out", str(tmp_path / "x.png")],
                   check=True, capture_output=True)
    got = np.loadtxt(codes, dtype=np.int64).reshape(3, -1)
    py = Pipeline(open_manifest(dalle_bundle), "openvino")
    want = py.generator.generate(py.condition.prepare(3, prompt="a handwritten seven"), 4, 3, None, top_k=7)
    assert np.array_equal(got, want.reshape(3, -1))
