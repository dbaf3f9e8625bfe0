"""Token families exported to ONNX and OpenVINO: KV-cache parity gate, sampling on every backend, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgegen.cli import main
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.stages import TokenGenerator

BACKENDS = ("torch", "onnxruntime", "openvino")


@pytest.mark.parametrize("which", ["vq_bundle", "dalle_bundle"])
def test_kv_cache_parity_gate(which, request):
    bundle = request.getfixturevalue(which)
    verify = json.loads((bundle / "verify.json").read_text())
    assert verify["passed"]
    m = open_manifest(bundle)
    step = m.sampling["role"]
    static = m.sampling["static_kv"]  # the static-shape step roles (tests/runtimes/test_static_kv.py)
    assert set(verify["results"]) == {step, "decoder", "encoder", static["decode"], static["prefill"]}
    for fmt in ("onnx", "openvino"):
        r = verify["results"][step][fmt]["fp32"]
        assert r["decode_steps"] == 20 and r["trajectory_max_abs"] <= 1e-4 and r["single_call_max_abs"] <= 1e-4
        assert r["greedy_matches_torch_no_cache"] and r["torch_greedy_with_cache_matches_no_cache"]
    # the step network's cache dims are dynamic in the exported ONNX
    import onnx
    g = onnx.load(str(m.file(step, "onnx"))).graph
    past = next(i for i in g.input if i.name == "past_kv").type.tensor_type.shape.dim
    assert past[0].dim_param and past[4].dim_param


def test_dalle_bundle_lists_its_tokenizer(dalle_bundle):
    data = json.loads((dalle_bundle / "manifest.json").read_text())
    assert data["files"]["tokenizer"]["path"] == "tokenizer.json"
    stages = data["pipeline"]
    assert stages["generator"]["kind"] == "tokens" and stages["condition"]["kind"] == "prompt"
    assert stages["condition"]["tokenizer"]["file"] == "tokenizer.json"
    (dalle_bundle / "tokenizer.json").write_text((dalle_bundle / "tokenizer.json").read_text() + " ")
    from edgegen.errors import EdgegenError
    with pytest.raises(EdgegenError, match="sha256"):
        open_manifest(dalle_bundle)
    (dalle_bundle / "tokenizer.json").write_text((dalle_bundle / "tokenizer.json").read_text()[:-1])


@pytest.mark.parametrize("which, kw", [("vq_bundle", {"labels": 3}), ("dalle_bundle", {"prompt": "a handwritten seven"})])
def test_every_backend_samples_the_same_tokens_through_one_loop(which, kw, request):
    m = open_manifest(request.getfixturevalue(which))
    codes = {}
    for name in BACKENDS:
        pipe = Pipeline(m, name)
        assert isinstance(pipe.generator, TokenGenerator) and pipe.decoder is not None
        cond = pipe.condition.prepare(6, prompt=kw.get("prompt"), labels=kw.get("labels"))
        codes[name] = pipe.generator.generate(cond, 5, 4, None, top_k=5)
        images = pipe.sample(6, seed=5, batch_size=4, top_k=5, **kw)
        assert images.shape == (6, *m.sample_shape) and np.isfinite(images).all()
    assert np.array_equal(codes["torch"], codes["onnxruntime"])
    assert np.array_equal(codes["torch"], codes["openvino"])


def test_cli_sample_prompt_and_label(dalle_bundle, vq_bundle, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["sample", str(dalle_bundle), "--prompt", "a handwritten seven", "--backend", "onnxruntime",
                 "--n", "4", "--seed", "0", "--out", str(out), "--quiet", "--top-p", "0.9"]) == 0
    assert out.is_file() and np.load(out.with_suffix(".npy")).shape == (4, 1, 16, 16)
    assert main(["sample", str(vq_bundle), "--label", "3", "--n", "4", "--out", str(out), "--quiet",
                 "--temperature", "0"]) == 0


@pytest.mark.parametrize("args, msg", [
    (["--prompt", ""], "prompt is empty"),
    (["--prompt", "seven " * 30], "rejected, not truncated"),
    (["--prompt", "a handwritten 7 ☃"], "does not know"),
    (["--prompt", "seven", "--top-k", "0"], "top-k"),
    (["--prompt", "seven", "--top-k", "-2"], "top-k"),
    (["--prompt", "seven", "--top-p", "0"], "top-p"),
    (["--prompt", "seven", "--top-p", "1.5"], "top-p"),
    (["--prompt", "seven", "--temperature", "-1"], "temperature"),
    (["--prompt", "seven", "--steps", "10"], "does not apply to token models"),
    (["--prompt", "seven", "--label", "3"], "not both"),
])
def test_cli_bad_input_is_one_line_error(dalle_bundle, tmp_path, capsys, args, msg):
    assert main(["sample", str(dalle_bundle), "--n", "2", "--out", str(tmp_path / "g.png"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgegen: error:") and msg in err and "\n" not in err
    assert not (tmp_path / "g.png").exists()


def test_cli_label_model_rejects_a_prompt(vq_bundle, tmp_path, capsys):
    assert main(["sample", str(vq_bundle), "--prompt", "seven", "--out", str(tmp_path / "g.png"), "--quiet"]) == 2
    assert "class-conditional" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["vq_bundle", "dalle_bundle"])
def test_scores_samples_and_reconstructions(which, request, evaluator):
    from edgegen.train.evaluate import evaluate_pipeline
    m = open_manifest(request.getfixturevalue(which))
    scores, images = evaluate_pipeline(Pipeline(m, "onnxruntime"), n=20, seed=0, batch_size=8, progress=False,
                                       evaluator=evaluator)
    assert images.shape == (20, 1, 16, 16) and 0.0 <= scores["accuracy"] <= 1.0 and np.isfinite(scores["fid"])
    assert scores["prompts"] == ("held-out templates" if which == "dalle_bundle" else "label token")
    rec = scores["reconstruction"]
    assert rec["n"] == 360 and {"accuracy", "mse", "usage", "perplexity", "dead_codes"} <= set(rec)
