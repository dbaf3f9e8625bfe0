"""The shared token loop: sampling rules, Philox-driven determinism, KV-cache loop, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.rng import STREAM_TOKENS, uniform
from edgegen.runtimes.tokens import TokenSampling, generate, greedy_no_cache, next_tokens

LOGITS = np.log(np.array([[0.1, 0.4, 0.2, 0.3]]))


def test_greedy_is_argmax_and_ignores_u():
    for u in (0.01, 0.5, 0.99):
        assert next_tokens(LOGITS, np.array([u]), TokenSampling(temperature=0.0))[0] == 1


def test_inverse_cdf_over_descending_order():
    # descending order: 1 (0.4), 3 (0.3), 2 (0.2), 0 (0.1)
    cfg = TokenSampling()
    picks = [int(next_tokens(LOGITS, np.array([u]), cfg)[0]) for u in (0.05, 0.39, 0.41, 0.69, 0.71, 0.89, 0.95)]
    assert picks == [1, 1, 3, 3, 2, 2, 0]


def test_top_k_and_top_p_restrict_the_support():
    u = np.linspace(0.001, 0.999, 500)
    logits = np.repeat(LOGITS, len(u), axis=0)
    assert set(next_tokens(logits, u, TokenSampling(top_k=1))) == {1}
    assert set(next_tokens(logits, u, TokenSampling(top_k=2))) == {1, 3}
    assert set(next_tokens(logits, u, TokenSampling(top_k=99))) == {0, 1, 2, 3}  # k > V keeps all
    assert set(next_tokens(logits, u, TokenSampling(top_p=0.05))) == {1}  # first always kept
    assert set(next_tokens(logits, u, TokenSampling(top_p=0.7))) == {1, 3}  # 0.4 + 0.3 reaches 0.7
    assert set(next_tokens(logits, u, TokenSampling(top_p=0.71))) == {1, 3, 2}
    # top-p on the probabilities renormalized over the top k: 0.4/0.7 = 0.57 >= 0.5
    assert set(next_tokens(logits, u, TokenSampling(top_k=2, top_p=0.5))) == {1}


def test_frequencies_follow_the_tempered_distribution():
    u = uniform(7, 20000, 1, draw=0)[:, 0]
    logits = np.repeat(LOGITS, len(u), axis=0)
    for t in (1.0, 0.5):
        p = np.exp(LOGITS[0] / t) / np.exp(LOGITS[0] / t).sum()
        freq = np.bincount(next_tokens(logits, u, TokenSampling(temperature=t)), minlength=4) / len(u)
        assert np.abs(freq - p).max() < 0.015


@pytest.mark.parametrize("cfg, msg", [
    (TokenSampling(top_k=0), "top-k"), (TokenSampling(top_k=-3), "top-k"),
    (TokenSampling(top_p=0.0), "top-p"), (TokenSampling(top_p=1.5), "top-p"), (TokenSampling(top_p=-0.1), "top-p"),
    (TokenSampling(temperature=-1.0), "temperature"), (TokenSampling(temperature=float("nan")), "temperature"),
])
def test_bad_sampling_settings(cfg, msg):
    with pytest.raises(EdgegenError, match=msg):
        cfg.check()


class Bigram:
    """A toy step network with a real cache: logits depend on the last token and the position."""

    def __init__(self, vocab=6, seed=0):
        self.table = np.random.default_rng(seed).normal(size=(vocab, vocab)) * 3
        self.calls = []

    def __call__(self, tokens, past):
        self.calls.append((tokens.shape[1], past.shape[4]))
        b, s = tokens.shape
        pos = past.shape[4] + np.arange(s)
        logits = self.table[tokens] + 0.1 * pos[None, :, None]
        present = np.concatenate([past, np.zeros((b, 1, 2, 1, s, 1), np.float32)], axis=4)
        return logits, present


def test_generate_prefills_once_then_decodes_one_token_with_the_cache():
    step = Bigram()
    prompt = np.array([[1, 2, 3], [0, 0, 4]])
    out = generate(step, prompt, 5, np.zeros((2, 1, 2, 1, 0, 1), np.float32), TokenSampling(temperature=0.0), 0)
    assert step.calls == [(3, 0), (1, 3), (1, 4), (1, 5), (1, 6)]
    full = lambda seq: Bigram()(seq, np.zeros((len(seq), 1, 2, 1, 0, 1), np.float32))[0]
    assert np.array_equal(out, greedy_no_cache(full, prompt, 5))


def test_same_seed_same_tokens_whatever_the_batch_size():
    empty = lambda b: np.zeros((b, 1, 2, 1, 0, 1), np.float32)
    prompt = np.arange(8)[:, None] % 6
    cfg = TokenSampling(temperature=1.0, top_k=4, top_p=0.9)
    whole = generate(Bigram(), prompt, 7, empty(8), cfg, seed=3)
    parts = np.concatenate([generate(Bigram(), prompt[i:i + 3], 7, empty(len(prompt[i:i + 3])), cfg, seed=3,
                                     first_sample=i) for i in range(0, 8, 3)])
    assert np.array_equal(whole, parts)
    assert not np.array_equal(whole, generate(Bigram(), prompt, 7, empty(8), cfg, seed=4))


def test_token_stream_is_the_philox_tokens_stream():
    u = uniform(5, 2, 1, draw=3)
    assert np.array_equal(u, uniform(5, 2, 1, draw=3, stream=STREAM_TOKENS))
    assert not np.array_equal(u, uniform(5, 2, 1, draw=3, stream=0))
