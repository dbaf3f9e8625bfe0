"""The static-shape KV cache (issue 17; train/static_kv.py, runtimes/static_kv.py) in Python.

On the tiny VQ prior and DALL-E bundles: the export gate passed for the static roles; their
ONNX inputs have no dynamic dim but the batch; the token loop over them gives exactly the tokens of
the dynamic cache and of cache-free greedy decoding, on onnxruntime and openvino, for any batch
size and sampling setting; a prompt fed in chunks gives the same tokens; bundles without the
static roles keep working.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import create_backend
from edgegen.runtimes.tokens import greedy_no_cache

BACKENDS = ("onnxruntime", "openvino")
SETTINGS = [dict(temperature=0.0), dict(top_k=5), dict(top_p=0.8, temperature=0.7)]


@pytest.fixture(scope="module", params=["vqvae", "dalle"])
def bundle(request, vq_bundle, dalle_bundle):
    path = vq_bundle if request.param == "vqvae" else dalle_bundle
    kw = {"labels": 3} if request.param == "vqvae" else {"prompt": "a handwritten seven"}
    return path, kw


def strip_static(src, dst):
    """A copy of ``src`` as a bundle exported before the static cache: no static roles, no entry."""
    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    info = data["pipeline"]["generator"].pop("static_kv")
    for role in {info["decode"], info["prefill"]}:
        del data["roles"][role]
    (dst / "manifest.json").write_text(json.dumps(data))
    return dst


def test_the_gate_checked_the_static_roles(bundle):
    import onnx
    path, _ = bundle
    m = open_manifest(path)
    info = m.generator["static_kv"]
    verify = json.loads((path / "verify.json").read_text())
    for fmt in ("onnx", "openvino"):
        r = verify["results"][info["decode"]][fmt]["fp32"]
        assert r["passed"] and r["single_call_max_abs"] <= 1e-4 and r["trajectory_max_abs"] <= 1e-4
        assert r["greedy_matches_torch_no_cache"] and r["greedy_matches_dynamic_cache"] and r["greedy_mismatches"] == 0
        assert r["torch_static_matches_no_cache"]
        assert r["decode_steps"] == m.generator["image_tokens"] - 1 and r["prefill"] == info["prefill_len"]
        assert verify["results"][info["prefill"]][fmt]["fp32"]["passed"]
    for role in {info["decode"], info["prefill"]}:
        assert m.role(role).meta["static_of"] == m.generator["role"]
        assert {"onnx", "openvino", "torch"} <= set(m.formats(role))
        assert all(len(e["sha256"]) == 64 for per in m.formats(role).values() for e in per.values())
        g = onnx.load(str(m.file(role, "onnx"))).graph
        dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in g.input}
        assert dims["kv_cache"] == ["batch", *m.role(role).inputs[1].shape[1:]]  # one shape: only the batch varies
        assert dims["pos"] == [1] and dims["tokens"][1] == (1 if role == info["decode"] else info["prefill_len"])
    assert info["capacity"] == m.role(m.generator["role"]).meta["block_size"]


@pytest.mark.parametrize("name", BACKENDS)
def test_static_tokens_equal_the_dynamic_cache_for_any_batch(bundle, name):
    path, kw = bundle
    m = open_manifest(path)
    pipes = {mode: Pipeline(m, name, kv_cache=mode) for mode in ("static", "dynamic")}
    assert pipes["static"].generator.static is not None and pipes["dynamic"].generator.static is None
    cond = pipes["static"].condition.prepare(7, **kw)
    for cfg in SETTINGS:
        want = pipes["dynamic"].generator.generate(cond, 3, 7, None, **cfg)
        for batch in (1, 3, 7):
            got = pipes["static"].generator.generate(cond, 3, batch, None, **cfg)
            assert np.array_equal(got, want), (cfg, batch)


@pytest.mark.parametrize("name", BACKENDS)
def test_static_greedy_equals_cache_free_greedy(bundle, name):
    path, kw = bundle
    m = open_manifest(path)
    s = m.generator
    pipe = Pipeline(m, name, kv_cache="static")
    cond = pipe.condition.prepare(5, **kw)
    step = create_backend(name, m, s["role"])
    c = s["cache"]
    empty = np.zeros((5, c["layers"], 2, c["heads"], 0, c["head_dim"]), np.float32)
    want = greedy_no_cache(lambda seq: step.run({"tokens": seq, "past_kv": empty})["logits"], cond.tokens,
                           s["image_tokens"], s["code_offset"])
    got = pipe.generator.generate(cond, 0, 5, None, temperature=0.0)
    assert np.array_equal(got.reshape(5, -1), want)


def test_a_chunked_prompt_gives_the_same_tokens(bundle):
    path, kw = bundle
    m = open_manifest(path)
    pipe = Pipeline(m, "openvino", kv_cache="static")
    cond = pipe.condition.prepare(4, **kw)
    kv = pipe.generator.static
    want = pipe.generator.generate(cond, 9, 4, None, top_k=5)
    kv.prefill_len = 0  # never one call: the prompt goes through the decode role token by token
    pipe.generator.reset_counters()
    assert np.array_equal(pipe.generator.generate(cond, 9, 4, None, top_k=5), want)
    p, n = cond.tokens.shape[1], m.generator["image_tokens"]
    assert pipe.generator.network_calls == p + n - 1


def test_auto_and_old_bundles(bundle, tmp_path):
    path, kw = bundle
    m = open_manifest(path)
    assert Pipeline(m, "openvino").generator.static is not None  # auto: static on openvino
    old = open_manifest(strip_static(path, tmp_path / "old"))
    assert Pipeline(old, "openvino").generator.static is None
    want = Pipeline(m, "openvino").sample(3, seed=4, batch_size=2, top_k=5, **kw)
    got = Pipeline(old, "openvino").sample(3, seed=4, batch_size=2, top_k=5, **kw)
    assert np.array_equal(got, want)
    with pytest.raises(EdgegenError, match="no static KV cache"):
        Pipeline(old, "openvino", kv_cache="static")
    with pytest.raises(EdgegenError, match="unknown kv_cache 'fast'"):
        Pipeline(m, "openvino", kv_cache="fast")
