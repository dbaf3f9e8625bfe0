"""The page's WebGPU path (?ep=webgpu, onnxruntime-web's JSEP build ort.min.mjs) in Debian's headless
Chromium, and its fall-back when the browser has no adapter.

There is no GPU on this machine. Debian's Chromium ships SwiftShader's Vulkan driver
(chromium-common: /usr/lib/chromium/libvk_swiftshader.so + vk_swiftshader_icd.json); with
--enable-unsafe-webgpu and without --disable-gpu (conftest.WEBGPU_ARGS) it exposes it as a WebGPU
fallback adapter (vendor "google", architecture "swiftshader"). SwiftShader runs on the CPU, so
this checks the page's WebGPU path and onnxruntime-web's WebGPU kernels, not a real GPU's speed.

The WebGPU kernels reorder float math (tiled matmuls and convolutions, reductions), so the samples
are compared with Python's onnxruntime within WEBGPU_TOL; on SwiftShader they stayed within the
wasm tests' 1e-4 (figures: docs/notes/issue-18-webgpu.md).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

# Measured on SwiftShader: 7.3e-6 (tiny DDPM, ddim-50, n=4, seed 7), so the wasm tests' gate holds.
WEBGPU_TOL = 1e-4
# SwiftShader ran 0.77-2.9 s per network call here (by load), 38-143 s of generation, so it is opt-in.
SLOW_ENV = "EDGEGEN_WEBGPU_SAMPLES"
ADAPTER_JS = """async () => {
    if (!navigator.gpu) return 'navigator.gpu is undefined';
    const a = await navigator.gpu.requestAdapter().catch(() => null);
    return a ? `adapter ${a.info.vendor}/${a.info.architecture}` : 'requestAdapter() returned null';
}"""
NO_ADAPTER = "this browser has no WebGPU adapter: open the page with ?ep=wasm"


def adapter(browser, url: str) -> str:
    """What navigator.gpu.requestAdapter() gives on the served page (a secure context: 127.0.0.1)."""
    page = browser.new_page()
    try:
        page.goto(url + "?ep=wasm")
        return page.evaluate(ADAPTER_JS)
    finally:
        page.close()


def adapter_or_skip(browser, url: str) -> str:
    got = adapter(browser, url)
    if not got.startswith("adapter "):
        pytest.skip("needs a WebGPU adapter: Debian chromium with --enable-unsafe-webgpu "
                    f"(tests/web/conftest.py WEBGPU_ARGS) and SwiftShader's Vulkan from chromium-common; got: {got}")
    return got


def python_samples(bundle, n: int, seed: int, plan: str) -> np.ndarray:
    from edgegen.runtimes.pipeline import open_pipeline
    pipe = open_pipeline(bundle, "onnxruntime")
    p = pipe.manifest.data["plans"][plan]
    return pipe.sample(n, seed=seed, sampler=p["sampler"], steps=p["params"]["steps"],
                       **{k: v for k, v in p["params"].items() if k in ("eta", "clip_x0", "variance")})


def test_tiny_ddpm_webgpu_close_to_python(webgpu_browser, open_page, serve, tiny_bundle):
    """DDIM-50 on the tiny DDPM with ?ep=webgpu: the page runs on WebGPU, and its samples are
    Python's onnxruntime samples for the same seed and plan within WEBGPU_TOL."""
    if os.environ.get(SLOW_ENV) != "1":
        pytest.skip(f"40 s to 2.5 min on SwiftShader's CPU WebGPU (0.8-2.9 s per network call): set {SLOW_ENV}=1 to run it")
    srv = serve(tiny_bundle)
    adapter_or_skip(webgpu_browser, srv.url)
    page = open_page(srv, ep="webgpu", in_browser=webgpu_browser)
    assert page.state == "ready", page.js("window.edgegen.error")
    assert page.js("window.edgegen.pipeline.backend") == "webgpu"
    got = page.generate(4, 7, "ddim-50")
    ref = python_samples(tiny_bundle, 4, 7, "ddim-50")
    assert got["dims"] == list(ref.shape[1:])
    err = float(np.abs(got["samples"].reshape(ref.shape) - ref).max())
    print(f"WebGPU page vs Python onnxruntime (tiny DDPM, ddim-50, n=4, seed 7): max abs diff {err:.3g}; {got['latency']}")
    assert err <= WEBGPU_TOL, f"page (WebGPU) vs Python onnxruntime: max abs difference {err:.3g}"
    assert float(ref.std()) > 0.05  # real samples, not a constant the two could agree on
    assert got["latency"].endswith(", webgpu")


def test_auto_picks_webgpu_when_there_is_an_adapter(webgpu_browser, open_page, serve, tiny_bundle):
    srv = serve(tiny_bundle)
    adapter_or_skip(webgpu_browser, srv.url)
    page = open_page(srv, ep="auto", in_browser=webgpu_browser)
    assert page.state == "ready", page.js("window.edgegen.error")
    assert page.js("window.edgegen.pipeline.backend") == "webgpu"


def test_no_adapter_auto_falls_back_and_webgpu_is_a_message(browser, open_page, serve, tiny_bundle):
    """With --disable-gpu (the other browser tests' flags) Chromium has no adapter: auto runs on
    wasm, and ?ep=webgpu is one line in the page's message box with Generate disabled."""
    srv = serve(tiny_bundle)
    assert adapter(browser, srv.url) in ("requestAdapter() returned null", "navigator.gpu is undefined")
    auto = open_page(srv, ep="auto")
    assert auto.state == "ready", auto.js("window.edgegen.error")
    assert auto.js("window.edgegen.pipeline.backend") == "wasm"
    page = open_page(srv, ep="webgpu")
    assert page.state == "error"
    assert page.page.text_content("#error").strip() == NO_ADAPTER
    assert page.page.is_disabled("#generate")
