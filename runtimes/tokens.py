"""THE token loop (Python): prefill, then one-token decode with the KV cache; sampling from logits.

Every backend runs it through one callable ``step(tokens, past_kv) -> (logits, present_kv)``
(the exported step network, see train/transformer.py); nothing here knows which runtime it is.

Sampling one token from logits z (V,), specified so other languages reproduce it exactly:

1. temperature == 0: greedy, the index of the largest logit (lowest index on ties); no draw is used.
2. otherwise, in float64: p = softmax(z / temperature);
   order the indices by p descending, ties by index ascending (a stable sort);
   top-k (k >= 1): keep the first k of that order (k > V keeps all);
   top-p (0 < p <= 1): keep the shortest prefix of the order whose probability sum is >= top_p
   (the first index is always kept); with both, top-k first and top-p on the probabilities
   renormalized over the top k.
3. u = Philox uniform for (seed, sample index, draw = index of the generated token, STREAM_TOKENS)
   (runtimes/rng.py), and the token is the first kept index in that order whose running sum of
   kept probabilities is >= u * (sum of kept probabilities); the last kept index if rounding leaves
   none.

Sample i of a request always uses sample index ``first_sample + i``, so results do not depend
on the batch size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from edgegen.errors import EdgegenError
from edgegen.runtimes.rng import STREAM_TOKENS, uniform

Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TokenSampling:
    temperature: float = 1.0
    top_k: Optional[int] = None  # None = off
    top_p: float = 1.0  # 1 = off

    def check(self) -> "TokenSampling":
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not np.isfinite(t) or t < 0:
            raise EdgegenError(f"temperature must be a finite number >= 0 (0 = greedy), got {t!r}")
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0):
            raise EdgegenError(f"top-k must be a positive integer (leave it unset to turn it off), got {k!r}")
        p = self.top_p
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 < p <= 1.0):
            raise EdgegenError(f"top-p must be in (0, 1] (1 = off), got {p!r}")
        return self


def next_tokens(logits: np.ndarray, u: np.ndarray, cfg: TokenSampling) -> np.ndarray:
    """logits (B, V), u (B,) uniforms in (0, 1) -> token indices (B,) int64 (see the module doc)."""
    z = np.asarray(logits, dtype=np.float64)
    if cfg.temperature == 0:
        return np.argmax(z, axis=1).astype(np.int64)
    z = z / cfg.temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    order = np.argsort(-p, axis=1, kind="stable")  # (B, V) descending, ties by index
    ps = np.take_along_axis(p, order, axis=1)
    keep = np.ones_like(ps, dtype=bool)
    if cfg.top_k is not None:
        keep[:, min(int(cfg.top_k), ps.shape[1]):] = False
    if cfg.top_p < 1.0:
        mass = ps * keep
        mass /= mass.sum(axis=1, keepdims=True)  # renormalized after top-k
        before = np.cumsum(mass, axis=1) - mass  # kept mass before each position
        keep &= before < cfg.top_p  # prefix up to and including the one reaching top_p
    keep[:, 0] = True
    kept = ps * keep
    cum = np.cumsum(kept, axis=1)
    target = np.asarray(u, dtype=np.float64)[:, None] * cum[:, -1:]
    pos = np.minimum((cum < target).sum(axis=1), keep.sum(axis=1) - 1)  # first cum >= target
    return np.take_along_axis(order, pos[:, None], axis=1)[:, 0].astype(np.int64)


def generate(step: Step, prompt: np.ndarray, n_new: int, empty_past: np.ndarray, sampling: TokenSampling,
             seed: int, first_sample: int = 0, token_offset: int = 0,
             on_token: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Generate ``n_new`` tokens after ``prompt`` (B, P) int64; returns output indices (B, n_new).

    ``empty_past`` is the cache with a past length of 0, (B, L, 2, H, 0, Dh). Output index c is
    fed back as input id ``c + token_offset``.
    """
    prompt = np.ascontiguousarray(prompt, dtype=np.int64)
    b = prompt.shape[0]
    out = np.zeros((b, n_new), dtype=np.int64)
    logits, past = step(prompt, empty_past)  # prefill: (B, P, V), cache of P positions
    for i in range(n_new):
        u = uniform(seed, b, 1, draw=i, stream=STREAM_TOKENS, first_sample=first_sample)[:, 0]
        out[:, i] = next_tokens(logits[:, -1], u, sampling)
        if on_token:
            on_token(i)
        if i + 1 < n_new:  # decode: one token, the cache grows by one
            logits, past = step(out[:, i:i + 1] + token_offset, past)
    return out


def greedy_no_cache(full: Callable[[np.ndarray], np.ndarray], prompt: np.ndarray, n_new: int,
                    token_offset: int = 0) -> np.ndarray:
    """Reference: greedy generation re-running the whole sequence every step (no cache).

    ``full(tokens (B, S)) -> logits (B, S, V)``; used by the parity gate.
    """
    seq = np.ascontiguousarray(prompt, dtype=np.int64)
    out = np.zeros((seq.shape[0], n_new), dtype=np.int64)
    for i in range(n_new):
        out[:, i] = np.argmax(full(seq)[:, -1].astype(np.float64), axis=1)
        seq = np.concatenate([seq, out[:, i:i + 1] + token_offset], axis=1)
    return out
