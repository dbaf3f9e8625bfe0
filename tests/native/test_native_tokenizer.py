"""Prompt text tokenized in C++ (issue 17, ABI 5): the bundle's tokenizer converted to an OpenVINO
model at export (export/tokenizer_export.py) and run by libedgegen with openvino-tokenizers'
extension library (runtimes/native/src/tokenizer.cpp).

- edgegen_tokenize gives the ids of Python's TextEncoder on a corpus (training and held-out
  captions, recombined vocabulary, random strings, case, spacing, punctuation, unicode, unknown
  characters, empty and too-long prompts), or the same refusal, for the tiny DALL-E and LDM bundles;
- sampling from prompt text equals sampling from Python's token ids, and equals Python openvino;
- bad prompts, a bundle without a tokenizer model and a missing extension library are one line.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.export import tokenizer_export
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import native_backend
from edgegen.runtimes.backends.native_backend import NativeBackend
from edgegen.runtimes.text import TextEncoder

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")
UNKNOWN = "the prompt has characters the tokenizer does not know: "


def held_out(name: str) -> list[str]:
    from edgegen.train import captions, ldm_captions
    if name == "dalle":
        return captions.corpus(captions.HELD_OUT_TEMPLATES)
    return ldm_captions.DIGITS.corpus(held_out=True) + ldm_captions.FASHION.corpus(held_out=True)


# The bundles the C++ tests use too (`make native-testdata`; they carry tokenizer.xml), or the env
# variables that point the C++ tests elsewhere.
BUNDLES = {"dalle": ("EDGEGEN_TOKEN_TEST_BUNDLE", "build/testdata/dalle-tiny"),
           "ldm": ("EDGEGEN_LDM_TEST_BUNDLE", "build/testdata/ldm-tiny")}


@pytest.fixture(scope="module", params=["dalle", "ldm"])
def prompt_bundle(request):
    env, default = BUNDLES[request.param]
    path = Path(os.environ.get(env) or Path(__file__).resolve().parents[2] / default)
    if not (path / "manifest.json").is_file():
        pytest.skip(f"no tiny {request.param} bundle at {path} (make native-testdata, or set {env})")
    return request.param, path


def _text(bundle: Path) -> TextEncoder:
    tok = json.loads((bundle / "manifest.json").read_text())["pipeline"]["condition"]["tokenizer"]
    return TextEncoder.from_file(bundle / tok["file"], tok["text_length"])


def _outcome(fn):
    try:
        return "ids", fn().tolist()
    except EdgegenError as e:
        return "error", str(e)


def test_bundle_carries_the_gated_tokenizer_model(prompt_bundle):
    _, bundle = prompt_bundle
    data = json.loads((bundle / "manifest.json").read_text())
    assert data["pipeline"]["condition"]["tokenizer"]["openvino"] == "tokenizer.xml"
    assert {data["files"][k]["path"] for k in ("tokenizer_openvino", "tokenizer_openvino_weights")} == \
        {"tokenizer.xml", "tokenizer.bin"}
    verify = json.loads((bundle / "verify.json").read_text())["tokenizer"]
    assert verify["passed"] and verify["prompts"] > 500


def test_ids_identical_to_python(prompt_bundle):
    name, bundle = prompt_bundle
    text = _text(bundle)
    m = open_manifest(bundle)
    native = NativeBackend(m, m.generator["role"], threads=1)
    prompts = (tokenizer_export.corpus(text, m.stage("condition")["label_prompts"], seed=1) + held_out(name)
               + ["a handwritten seven " * 10, "É", "ÀB", "a\x1fb", "a\x00b", "hello wörld"])
    differ, accepted, refused = [], 0, 0
    for p in prompts:
        want = _outcome(lambda: text.encode(p))
        got = _outcome(lambda: native.tokenize(p)[0])
        accepted += want[0] == "ids"
        refused += want[0] == "error"
        same = got == want
        if not same and want[0] == got[0] == "error" and want[1].startswith(UNKNOWN):
            # unknown characters: the same words; C++ names them as written, Python after NFKC + lower case
            same = got[1].startswith(UNKNOWN) and (got[1] == want[1] or not p.isascii())
        if not same:
            differ.append((p, want, got))
    assert not differ, differ[:5]
    assert accepted > 400 and refused > 20  # both kinds are exercised
    ids, used = native.tokenize(m.stage("condition")["label_prompts"][7])
    assert used == int((ids != text.pad_id).sum()) and (ids[used:] == text.pad_id).all()
    native.close()


@pytest.mark.parametrize("prompt, words", [
    ("", "the prompt is empty: describe the image"), ("  \t ", "the prompt is empty"),
    ("seven " * 40, "tokens long, more than this model's text length"),
    ("a handwritten sevén", UNKNOWN + "'é'"), ("a\udcffb", "the prompt has characters")])
def test_bad_prompts_one_line_like_python(prompt_bundle, prompt, words):
    name, bundle = prompt_bundle
    m = open_manifest(bundle)
    with pytest.raises(EdgegenError) as py:
        _text(bundle).encode(prompt)
    native = NativeBackend(m, m.generator["role"], threads=1)
    with pytest.raises(EdgegenError) as c:
        Pipeline(m, {m.generator["role"]: native}).sample(2, seed=0, prompt=prompt)
    for e in (py.value, c.value):
        assert words in str(e) and "\n" not in str(e), str(e)
    if prompt.isascii():
        assert str(c.value).endswith(str(py.value)), (str(c.value), str(py.value))
    native.close()


def test_text_sampling_equals_token_ids_and_python(prompt_bundle):
    name, bundle = prompt_bundle
    m = open_manifest(bundle)
    prompts = ["a drawing of a handwritten four", "the number 3"] if name == "dalle" else \
        ["a photo of a 4", "a handwritten seven"]
    kw = {"steps": 5} if name == "ldm" else {"temperature": 1.0}
    native = NativeBackend(m, m.generator["role"], threads=1)
    assert native.has_tokenizer
    pipe = Pipeline(m, {m.generator["role"]: native})
    calls = []
    orig = TextEncoder.encode
    try:  # the text path must not tokenize in Python
        TextEncoder.encode = lambda self, p: calls.append(p) or orig(self, p)
        text_out = pipe.sample(2, seed=3, prompt=prompts, **kw)
    finally:
        TextEncoder.encode = orig
    assert calls == [] or all(not c.strip() for c in calls), calls
    native._has_tokenizer = False  # the same call with Python's token ids (prompt_tokens)
    ids_out = pipe.sample(2, seed=3, prompt=prompts, **kw)
    np.testing.assert_array_equal(text_out, ids_out)
    ref = Pipeline(m, "openvino", threads=1).sample(2, seed=3, prompt=prompts, **kw)
    assert np.abs(text_out - ref).max() <= 1e-4
    native.close()


def _without_tokenizer_model(bundle: Path, out: Path) -> Path:
    shutil.copytree(bundle, out)
    data = json.loads((out / "manifest.json").read_text())
    del data["pipeline"]["condition"]["tokenizer"]["openvino"]
    for k in ("tokenizer_openvino", "tokenizer_openvino_weights"):
        del data["files"][k]
    (out / "manifest.json").write_text(json.dumps(data))
    return out


def test_bundle_without_tokenizer_model_and_missing_library(prompt_bundle, tmp_path, monkeypatch):
    name, bundle = prompt_bundle
    old = open_manifest(_without_tokenizer_model(bundle, tmp_path / "old"))
    native = NativeBackend(old, old.generator["role"], threads=1)
    assert not native.has_tokenizer
    with pytest.raises(EdgegenError, match=r"has no tokenizer model for prompt text[^\n]*$"):
        native.tokenize("a handwritten seven")
    # the Python-token path still samples it
    assert Pipeline(old, {old.generator["role"]: native}).sample(1, seed=0, prompt="a handwritten seven",
                                                                 **({"steps": 3} if name == "ldm" else {})).shape[0] == 1
    native.close()
    monkeypatch.setenv("EDGEGEN_OV_TOKENIZERS", str(tmp_path / "nowhere.so"))
    m = open_manifest(bundle)
    fresh = NativeBackend(m, m.generator["role"], threads=1)  # the extension is loaded on first use
    with pytest.raises(EdgegenError, match=r"tokenizers extension library was not found at .*nowhere\.so: set "
                                           r"EDGEGEN_OV_TOKENIZERS[^\n]*$"):
        fresh.tokenize("a handwritten seven")
    fresh.close()


def test_cli_sample_and_edgegen_run_take_prompt_text(prompt_bundle, tmp_path):
    name, bundle = prompt_bundle
    cli = Path(sys.executable).parent / "edgegen"
    steps = ["--steps", "3"] if name == "ldm" else []
    r = subprocess.run([str(cli), "sample", str(bundle), "--backend", "native", "--prompt", "a handwritten seven",
                        "--n", "2", "--out", str(tmp_path / "s.png"), *steps], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and (tmp_path / "s.png").is_file(), r.stderr
    run = native_backend.library_path().parent / "edgegen-run"
    if not run.is_file():
        pytest.skip(f"{run} is not built")
    ids = subprocess.run([str(cli), "tokenize", str(bundle), "a handwritten seven"], capture_output=True, text=True,
                         check=True).stdout.strip()
    base = [str(run), str(bundle), "--n", "2", "--seed", "1", "--threads", "1"]  # the stored default plan
    a = subprocess.run(base + ["--prompt", "a handwritten seven", "--out", str(tmp_path / "a.png"),
                               "--raw", str(tmp_path / "a.f32")], capture_output=True, text=True, timeout=600)
    b = subprocess.run(base + ["--prompt-tokens", ids, "--out", str(tmp_path / "b.png"),
                               "--raw", str(tmp_path / "b.f32")], capture_output=True, text=True, timeout=600)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert (tmp_path / "a.f32").read_bytes() == (tmp_path / "b.f32").read_bytes()
    bad = subprocess.run(base + ["--prompt", "", "--out", str(tmp_path / "c.png")], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode != 0 and "the prompt is empty" in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
