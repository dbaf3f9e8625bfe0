"""The static-shape KV cache in the native token loop (tokens.cpp StepRunner::use_static_kv).

On the tiny VQ prior and DALL-E bundles: libedgegen on a bundle with the static roles gives exactly
the tokens of libedgegen on the same bundle without them (the dynamic cache, as bundles exported
before), and of Python's openvino loop over the static roles, for any batch size and sampling
setting; a bundle whose static entry asks for a chunked prompt runs the prompt one token per call
(the call count shows the static path ran) with the same tokens.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends.native_backend import NativeBackend

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")
SETTINGS = [dict(temperature=0.0), dict(), dict(top_k=5), dict(top_k=3, top_p=0.5, temperature=1.3)]


def edited_copy(src, dst, edit):
    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    edit(data)
    (dst / "manifest.json").write_text(json.dumps(data))
    return open_manifest(dst)


def strip(data):  # as exported before the static cache
    info = data["pipeline"]["generator"].pop("static_kv")
    for role in {info["decode"], info["prefill"]}:
        del data["roles"][role]


def chunked(data):  # the prompt through the decode role, one token per call
    info = data["pipeline"]["generator"]["static_kv"]
    info["prefill"], info["prefill_len"] = info["decode"], 1


@pytest.fixture(scope="module", params=["vqvae", "dalle"])
def bundle(request, vq_bundle, dalle_bundle, tmp_path_factory):
    path = vq_bundle if request.param == "vqvae" else dalle_bundle
    kw = {"labels": 3} if request.param == "vqvae" else {"prompt": "a handwritten seven"}
    tmp = tmp_path_factory.mktemp(f"static-{request.param}")
    return open_manifest(path), edited_copy(path, tmp / "old", strip), edited_copy(path, tmp / "chunked", chunked), kw


def test_native_static_tokens_equal_dynamic_and_python(bundle):
    m, old, _, kw = bundle
    static, dynamic = Pipeline(m, "native"), Pipeline(old, "native")
    python = Pipeline(m, "openvino", kv_cache="static")
    assert python.generator.static is not None
    cond = python.condition.prepare(5, **kw)
    try:
        for cfg in SETTINGS:
            want = python.generator.generate(cond, 7, 5, None, **cfg)
            for batch in (1, 2, 5):
                assert np.array_equal(static.generator.generate(cond, 7, batch, None, **cfg), want), (cfg, batch)
                assert np.array_equal(dynamic.generator.generate(cond, 7, batch, None, **cfg), want), (cfg, batch)
    finally:
        static.backend.close()
        dynamic.backend.close()


def test_native_chunked_prompt(bundle):
    m, _, chunk, kw = bundle
    one, many = Pipeline(m, "native"), Pipeline(chunk, "native")
    try:
        cond = one.condition.prepare(4, **kw)
        want = one.generator.generate(cond, 2, 3, None, top_k=5)
        many.generator.reset_counters()
        assert np.array_equal(many.generator.generate(cond, 2, 3, None, top_k=5), want)
        p, n = cond.tokens.shape[1], m.generator["image_tokens"]
        assert many.generator.network_calls == 2 * (p + n - 1)  # 2 batches, every prompt token its own call
    finally:
        one.backend.close()
        many.backend.close()
