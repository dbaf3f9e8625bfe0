"""The static-shape KV cache as a ``step`` of the token loop (tokens.py ``generate``).

A bundle exported since issue 17 has, beside the dynamic step role, static roles (their interface:
train/static_kv.py, named by the generator stage's ``static_kv`` entry): a fixed-capacity cache
(B, L, 2, H, C, Dh), a write position, one shape per role. ``StaticKV`` turns them into the
``step(tokens, past) -> (logits, past)`` callable the loop already drives; its ``past`` is the pair
(cache, position). The loop itself (prefill, decode, sampling) stays in tokens.py; the backends
still run one network call each.

    prefill: the prompt in one call of the prefill role when its length is the role's; otherwise
             chunked, one token per call of the decode role
    decode:  one call of the decode role; its ``kv_new`` (B, L, 2, H, 1, Dh) is written into
             slot ``pos`` of the cache here (the network only reads the cache)

``kv_cache`` option (Pipeline): "auto" runs the static roles on the backends in AUTO (where they are
faster: benchmarks/static_kv.md) when the bundle has them, "static" always (an error if the bundle
has none), "dynamic" never.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from edgegen.errors import EdgegenError

MODES = ("auto", "static", "dynamic")
AUTO = ("openvino",)  # backends whose "auto" is the static cache (native decides in tokens.cpp)

Run = Callable[[dict], dict]  # one network call: named arrays in, named arrays out


def wants_static(stage: dict, backend, mode: str) -> bool:
    """Whether the token loop over ``backend`` runs the static roles for this ``kv_cache`` mode."""
    if mode not in MODES:
        raise EdgegenError(f"unknown kv_cache '{mode}' (choose {', '.join(MODES)})")
    info = stage.get("static_kv")
    if mode == "dynamic":
        return False
    has = bool(info) and all(backend.format in backend.manifest.formats(info[k]) for k in ("decode", "prefill"))
    if mode == "static" and not has:
        raise EdgegenError("this bundle has no static KV cache for backend "
                           f"'{backend.name}' (export it again with this edgegen to add one)")
    return has and (mode == "static" or backend.name in AUTO)


class StaticKV:
    """``step(tokens, (cache, pos)) -> (logits, (cache, pos))`` over the static roles."""

    def __init__(self, info: dict, cache: dict, decode: Run, prefill: Optional[Run] = None):
        """``prefill``: the prefill role's call (the decode role's when they are one role); None: every
        prompt is fed in chunks of one token (the prefill role has no file for this backend)."""
        self.info, self.decode, self.prefill = info, decode, prefill
        self.capacity, self.prefill_len = int(info["capacity"]), int(info["prefill_len"])
        self.cache_shape = (int(cache["layers"]), 2, int(cache["heads"]), self.capacity, int(cache["head_dim"]))

    def empty(self, batch: int) -> tuple[np.ndarray, int]:
        return np.zeros((batch, *self.cache_shape), dtype=np.float32), 0

    def _call(self, run: Run, tokens: np.ndarray, cache: np.ndarray, pos: int) -> np.ndarray:
        i = self.info
        out = run({"tokens": tokens, i["cache_input"]: cache, i["position_input"]: np.array([pos], dtype=np.int64)})
        cache[:, :, :, :, pos:pos + tokens.shape[1]] = out[i["new_output"]]  # (B, L, 2, H, S, Dh)
        return out["logits"]

    def __call__(self, tokens: np.ndarray, past: tuple[np.ndarray, int]) -> tuple[np.ndarray, tuple]:
        """tokens (B, S) -> logits of the last call (B, S', V) and the cache with S more slots filled."""
        cache, pos = past
        s = tokens.shape[1]
        if pos + s > self.capacity:
            raise EdgegenError(f"{pos + s} tokens do not fit the static cache of {self.capacity}")
        if s == self.prefill_len and pos == 0 and self.prefill is not None:
            return self._call(self.prefill, tokens, cache, 0), (cache, s)
        for j in range(s):  # chunked: one token per decode call
            logits = self._call(self.decode, tokens[:, j:j + 1], cache, pos + j)
        return logits, (cache, pos + s)
