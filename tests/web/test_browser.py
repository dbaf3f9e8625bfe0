"""The web page (web/) in a real browser: Debian's headless Chromium driven by Playwright.

The page's plan interpreter and Philox4x32-10 + Box-Muller generator (JavaScript, float32) run
the tiny DDPM and flow bundles on onnxruntime-web (wasm) and must give Python's onnxruntime
samples for the same seed and plan; the RNG must match the committed vectors bit for bit; bad
bundles get a message in the page. The server (edgegen.web_serve) binds 127.0.0.1 only and is
stopped by each test.
"""
from __future__ import annotations

import io
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "runtimes" / "testdata" / "rng_vectors.json"


def python_samples(bundle: Path, n: int, seed: int, plan: str, label=None, prompt=None) -> np.ndarray:
    from edgegen.runtimes.pipeline import open_pipeline
    pipe = open_pipeline(bundle, "onnxruntime")
    p = pipe.manifest.data["plans"][plan]
    opts = {k: v for k, v in p["params"].items() if k in ("eta", "clip_x0", "variance")}
    assert pipe.plan(p["sampler"], p["params"]["steps"], **opts).key == plan
    return pipe.sample(n, seed=seed, labels=label, prompt=prompt, sampler=p["sampler"], steps=p["params"]["steps"], **opts)


def check_same_as_python(open_page, serve, bundle: Path, plan: str, n: int, seed: int, label=None, prompt=None):
    page = open_page(serve(bundle))
    got = page.generate(n, seed, plan, label, prompt)
    ref = python_samples(bundle, n, seed, plan, label, prompt)
    assert got["dims"] == list(ref.shape[1:])
    err = float(np.abs(got["samples"].reshape(ref.shape) - ref).max())
    assert err <= 1e-4, f"page vs Python onnxruntime: max abs difference {err:.3g}"
    assert float(ref.std()) > 0.05  # real samples, not a constant the two could agree on by accident
    assert got["progress"] == 1 and "network calls" in got["latency"]
    return page.page


def test_rng_vectors_bit_for_bit(browser, serve, tiny_bundle):
    """Philox4x32-10 words and Box-Muller float32 bits from web/src/rng.js equal the committed vectors."""
    vectors = json.loads(VECTORS.read_text())
    page = browser.new_page()
    page.goto(serve(tiny_bundle).url + "?ep=wasm")
    got = page.evaluate("""async (v) => {
        const rng = await import('./src/rng.js');
        const philox = v.philox4x32_10.map((c) => Array.from(rng.philox4x32(c.counter, c.key)));
        const gauss = v.gaussian.map((c) => {
            const e = c.shape.slice(1).reduce((a, b) => a * b, 1);
            const z = rng.gaussian(BigInt(c.seed), c.shape[0], e, c.draw, c.stream, c.first_sample);
            return Array.from(new Uint32Array(z.buffer));
        });
        return {philox, gauss};
    }""", vectors)
    assert got["philox"] == [c["out"] for c in vectors["philox4x32_10"]]
    assert got["gauss"] == [c["float32_bits"] for c in vectors["gaussian"]]
    assert sum(len(g) for g in got["gauss"]) > 50


def test_tiny_ddpm_page_equals_python(open_page, serve, tiny_bundle, tmp_path):
    """DDIM-50 on the tiny DDPM: the page's samples are Python's within 1e-4; the grid is drawn."""
    page = check_same_as_python(open_page, serve, tiny_bundle, "ddim-50", n=4, seed=7)
    from PIL import Image
    grid = np.asarray(Image.open(io.BytesIO(page.locator("#grid").screenshot())).convert("L"), dtype=np.float32)
    assert grid.shape[0] >= 64 and grid.shape[1] >= 64  # 2x2 tiles of 16 px, upscaled 4x
    assert grid.std() > 20 and len(np.unique(grid)) > 16  # digits drawn, not a blank canvas
    page.screenshot(path=str(tmp_path / "web-page.png"), full_page=True)


def test_tiny_flow_page_equals_python(open_page, serve, family_bundle):
    """RK4-20 (80 network calls) on the tiny flow model, one class label: the page equals Python."""
    check_same_as_python(open_page, serve, family_bundle("flow"), "rk4-20", n=3, seed=11, label=3)


def test_tiny_ldm_prompt_page_equals_python(open_page, serve, family_bundle):
    """The latent text-to-image family: prompt -> JS tokenizer -> text encoder -> DDIM with CFG on
    latents -> VAE decoder; the page equals Python, and a bad prompt is Python's one-line message."""
    bundle = family_bundle("ldm")
    page = check_same_as_python(open_page, serve, bundle, "ddim-50-noclip", n=2, seed=3, prompt="a handwritten seven")
    from edgegen.errors import EdgegenError
    from edgegen.runtimes.text import TextEncoder
    cond = json.loads((bundle / "manifest.json").read_text())["pipeline"]["condition"]
    text = TextEncoder.from_file(bundle / cond["tokenizer"]["file"], cond["tokenizer"]["text_length"])
    prompts = ["a handwritten seven", "A  Handwritten TWO", "ｓｅｖｅｎ", "zero one two three"]
    ids = page.evaluate("(ps) => ps.map((p) => window.edgegen.pipeline.tokenizer.encode(p))", prompts)
    assert ids == [text.encode(p).tolist() for p in prompts]
    page.fill("#prompt", "a handwritten seven #")
    page.click("#generate")
    page.wait_for_function("window.edgegen.state === 'error'", timeout=120_000)
    msg = page.text_content("#error")
    with pytest.raises(EdgegenError) as python_error:
        text.encode("a handwritten seven #")
    assert msg == str(python_error.value) and "'#'" in msg, msg
    assert not page.is_disabled("#generate")  # the page stays usable after a bad prompt


def test_unknown_plan_op_is_a_message(browser, serve, tiny_bundle):
    """A plan op the page does not know (a newer bundle, a static server) is one message, no crash."""
    srv = serve(tiny_bundle)
    data = json.loads((tiny_bundle / "manifest.json").read_text())
    data["plans"]["ddim-50"]["steps"][3]["ops"][1] = {"op": "warp", "dst": "x0", "factor": 2.0}
    page = browser.new_page()
    page.route(f"{srv.url}bundle/manifest.json",
               lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(data)))
    page.goto(srv.url + "?ep=wasm")
    page.wait_for_function("window.edgegen && window.edgegen.state !== 'loading'", timeout=120_000)
    assert page.evaluate("window.edgegen.state") == "error"
    msg = page.text_content("#error")
    assert page.is_visible("#error")
    assert "'ddim-50'" in msg and "steps[3].ops[1]" in msg and '"warp"' in msg and "does not know" in msg, msg
    assert "\n" not in msg.strip()


def test_bundle_without_onnx_is_a_message(open_page, serve, tiny_bundle, tmp_path):
    """A bundle with OpenVINO and torch files but no ONNX: the page says so and what to run."""
    bundle = tmp_path / "no-onnx"
    shutil.copytree(tiny_bundle, bundle, ignore=shutil.ignore_patterns("onnx"))
    data = json.loads((bundle / "manifest.json").read_text())
    for role in data["roles"].values():
        role["files"].pop("onnx")
    (bundle / "manifest.json").write_text(json.dumps(data))
    page = open_page(serve(bundle)).page
    assert page.evaluate("window.edgegen.state") == "error"
    msg = page.text_content("#error")
    assert "no ONNX files" in msg and "openvino" in msg and "--format onnx" in msg, msg
    assert page.is_disabled("#generate")


def test_token_bundle_is_a_message(open_page, serve, vq_bundle):
    """A token-loop bundle (VQ-VAE prior): the page says it runs sampler plans, and does not crash."""
    page = open_page(serve(vq_bundle)).page
    assert page.evaluate("window.edgegen.state") == "error"
    msg = page.text_content("#error")
    assert '"tokens"' in msg and "sampler plans" in msg, msg


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_server_is_local_read_only_and_contained(serve, tiny_bundle, tmp_path):
    """127.0.0.1 only; the bundle's manifest-listed files only; nothing outside web/ or the bundle."""
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "secret.txt").write_text("not listed in the manifest")
    srv = serve(bundle)
    assert srv.httpd.server_address[0] == "127.0.0.1"
    u = srv.url
    assert _status(u) == 200 and _status(u + "bundle/manifest.json") == 200
    assert _status(u + "bundle/onnx/denoiser.onnx") == 200
    assert _status(u + "node_modules/onnxruntime-web/dist/ort.min.mjs") == 200
    for bad in ("bundle/../pyproject.toml", "bundle/%2e%2e/pyproject.toml", "../pyproject.toml",
                "%2e%2e/Makefile", "bundle/", "bundle/onnx/", "bundle/secret.txt", "src/"):
        assert _status(u + bad) == 404, bad
    req = urllib.request.Request(u + "bundle/manifest.json", data=b"x", method="POST")
    assert _status_req(req) in (405, 501)


def _status_req(req) -> int:
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
