"""DALL-E style: captions with held-out templates, the BPE tokenizer (HF tokenizers), prompt checks, recipe."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.text import TextEncoder
from edgegen.train import captions
from edgegen.train.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def text():
    tok = train_tokenizer(captions.corpus(), 96, captions.ALPHABET)
    return TextEncoder(tok, 12)


def test_held_out_templates_are_not_in_training():
    assert not set(captions.HELD_OUT_TEMPLATES) & set(captions.TRAIN_TEMPLATES)
    train = set(captions.corpus())
    assert not set(captions.corpus(captions.HELD_OUT_TEMPLATES)) & train
    assert captions.caption("a handwritten {word}", 7) == "a handwritten seven"
    assert captions.caption("the digit {d}", 7) == "the digit 7"
    assert len(set(captions.random_captions(np.full(200, 3), seed=0))) > 5  # varied


def test_bpe_tokenizer_merges_words_and_round_trips(text):
    tok = text.tokenizer
    assert type(tok).__module__.startswith("tokenizers")
    ids = tok.encode("a handwritten seven").ids
    assert len(ids) < len("a handwritten seven")  # merged beyond characters
    assert tok.decode(ids).replace(" ", "") == "ahandwrittenseven"
    assert text.pad_id == 0


def test_prompts_pad_to_the_text_length(text):
    ids = text.encode("A Handwritten SEVEN")  # lower-cased by the normalizer
    assert ids.shape == (12,) and ids.dtype == np.int64
    assert np.array_equal(ids, text.encode("a handwritten seven"))
    n = len(text.tokenizer.encode("a handwritten seven").ids)
    assert (ids[n:] == text.pad_id).all() and (ids[:n] != text.pad_id).all()
    for held in captions.corpus(captions.HELD_OUT_TEMPLATES):  # held-out prompts fit and use known characters
        text.encode(held)


@pytest.mark.parametrize("prompt, msg", [
    ("", "empty"), ("   ", "empty"),
    ("a handwritten seven ☃", "characters the tokenizer does not know"),
    ("zwölf", "characters the tokenizer does not know"),
    ("seven " * 20, "rejected, not truncated"),
])
def test_bad_prompts_are_rejected(text, prompt, msg):
    with pytest.raises(EdgegenError, match=msg):
        text.encode(prompt)


def test_tiny_recipe_saves_tokenizer_json_in_the_run(tmp_path):
    from edgegen.train.families import get_preset
    from edgegen.train.runs import load_run, train_run
    run = train_run("dalle", get_preset("dalle", "tiny"), tmp_path / "dalle", progress=False)
    assert (run / "tokenizer.json").is_file()
    meta = json.loads((run / "config.json").read_text())
    assert "files" not in meta["stats"] and meta["stats"]["tokenizer_vocab"] == meta["config"]["text"]["vocab"]
    t = TextEncoder.from_file(run / "tokenizer.json", 12)
    assert t.tokenizer.get_vocab_size() == meta["config"]["text"]["vocab"]
    g = meta["config"]["transformer"]
    assert g["vocab_in"] == meta["config"]["text"]["vocab"] + meta["config"]["vq"]["codebook_size"]
    assert g["block_size"] == 12 + 16 - 1
    assert set(load_run(run).modules) == {"transformer", "decoder", "encoder"}


def test_text_length_shorter_than_the_captions_is_a_clear_error(tmp_path):
    from edgegen.train.dalle import train
    from edgegen.train.families import get_preset
    cfg = get_preset("dalle", "tiny")
    cfg.text.text_length = 2
    with pytest.raises(EdgegenError, match="shorter than the longest caption"):
        train(cfg, progress=False)
