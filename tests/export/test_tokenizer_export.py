"""The prompt tokenizer converted to an OpenVINO model (export/tokenizer_export.py): its parity gate
passes on edgegen's BPE tokenizers, fails on a tokenizer that is not the bundle's, and the manifest
lists the model with sha256. (The C++ side: tests/native/test_native_tokenizer.py.)"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("openvino_tokenizers")
pytest.importorskip("transformers")

from edgegen.export import tokenizer_export  # noqa: E402
from edgegen.manifest import Manifest, sha256_file  # noqa: E402
from edgegen.runtimes.text import TextEncoder  # noqa: E402
from edgegen.train import captions  # noqa: E402
from edgegen.train.tokenizer import train_tokenizer  # noqa: E402


def _tokenizer(tmp_path, vocab=96, corpus=None, name="tokenizer.json"):
    tok = train_tokenizer(corpus or captions.corpus(), vocab, captions.ALPHABET)
    (tmp_path / name).write_text(tok.to_str())
    return TextEncoder.from_file(tmp_path / name, 12)


def test_gate_passes_on_the_corpus_and_held_out_prompts(tmp_path):
    text = _tokenizer(tmp_path)
    xml, bin_ = tokenizer_export.convert(tmp_path / "tokenizer.json", tmp_path)
    assert xml.is_file() and bin_.is_file()
    prompts = tokenizer_export.corpus(text, captions.label_prompts()) + captions.corpus(captions.HELD_OUT_TEMPLATES)
    result = tokenizer_export.check(xml, text, prompts)
    assert result["passed"], result["mismatches"]
    kinds = {tokenizer_export._outcome(lambda: text.encode(p))[1] for p in prompts
             if tokenizer_export._outcome(lambda: text.encode(p))[0] == "error"}
    assert kinds == {"empty", "unknown", "long"}  # every refusal is exercised


def test_gate_fails_on_another_tokenizer(tmp_path):
    _tokenizer(tmp_path)
    xml, _ = tokenizer_export.convert(tmp_path / "tokenizer.json", tmp_path)
    other = _tokenizer(tmp_path, vocab=60, corpus=["zzz yyy xxx"] * 5, name="other.json")
    result = tokenizer_export.check(xml, other, captions.label_prompts())
    assert not result["passed"] and result["mismatches"]


def test_write_lists_the_model_in_the_manifest(tmp_path):
    _tokenizer(tmp_path)
    data = {"pipeline": {"condition": {"kind": "prompt", "tokenizer": {"file": "tokenizer.json", "text_length": 12},
                                       "label_prompts": captions.label_prompts()}}}
    m = Manifest(tmp_path, data)
    result = tokenizer_export.write(m, tmp_path)
    assert result["passed"]
    assert data["pipeline"]["condition"]["tokenizer"]["openvino"] == "tokenizer.xml"
    for key, path in (("tokenizer_openvino", "tokenizer.xml"), ("tokenizer_openvino_weights", "tokenizer.bin")):
        entry = data["files"][key]
        assert entry["path"] == path and entry["sha256"] == sha256_file(tmp_path / path)
    json.dumps(data)  # stays JSON
    no_prompt = Manifest(tmp_path, {"pipeline": {"condition": {"kind": "label"}}})
    assert tokenizer_export.write(no_prompt, tmp_path) is None
