"""What the browser tests share: Debian's headless Chromium driven by Playwright, the page's server
(edgegen.web_serve, 127.0.0.1 only, stopped after each test), and driving the page's form."""
from __future__ import annotations

import importlib.util
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ORT_WEB = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist" / "ort.min.mjs"
# The flags this machine's Chromium needs (no network beyond 127.0.0.1, no background services);
# Playwright adds --headless and a fresh temporary --user-data-dir itself.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The same without --disable-gpu, plus WebGPU (behind a flag on Linux): Debian's Chromium then
# exposes SwiftShader's Vulkan (chromium-common ships libvk_swiftshader.so) as a WebGPU adapter.
WEBGPU_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + ["--enable-unsafe-webgpu"]
TIMEOUT_MS = 120_000


def browser_missing() -> list[str]:
    """What the browser tests need and this machine lacks (empty: they run)."""
    return [what for what, ok in (
        ("Debian chromium (/usr/bin/chromium: make apt-deps)", CHROMIUM.exists()),
        ("web/node_modules/onnxruntime-web (make web-deps)", ORT_WEB.exists()),
        ("the Python package playwright (pip install 'edgegen[test]')", importlib.util.find_spec("playwright") is not None),
    ) if not ok]


def pytest_collection_modifyitems(config, items):
    """Every browser test (the modules named test_browser*.py) is skipped, with the reason, when
    Chromium, onnxruntime-web or playwright is missing."""
    missing = browser_missing()
    if missing:
        mark = pytest.mark.skip(reason="browser tests need " + ", ".join(missing))
        for item in items:
            if item.path.parent == Path(__file__).parent and item.path.name.startswith("test_browser"):
                item.add_marker(mark)


@pytest.fixture(scope="session")
def playwright_driver():
    """One Playwright driver for every browser (its sync API allows one at a time)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_driver):
    b = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture(scope="module")
def webgpu_browser(playwright_driver):
    """Chromium with WEBGPU_ARGS (tests/web/test_browser_webgpu.py)."""
    b = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=WEBGPU_ARGS)
    yield b
    b.close()


@pytest.fixture
def serve():
    """serve(bundle) -> a started WebServer; every one is stopped when the test ends."""
    from edgegen.web_serve import WebServer
    started = []

    def start(bundle):
        srv = WebServer(bundle, quiet=True).start()
        started.append(srv)
        return srv
    yield start
    for srv in started:
        srv.close()
        with pytest.raises(OSError):  # stopped: nothing listens on its port any more
            urllib.request.urlopen(srv.url, timeout=5)


class Page:
    """The page of one bundle in the browser, driven through its form."""

    def __init__(self, browser, url: str, ep: str = "wasm"):
        self.page = browser.new_page()
        self.page.goto(url + f"?ep={ep}")
        self.page.wait_for_function("window.edgegen && window.edgegen.state !== 'loading'", timeout=TIMEOUT_MS)

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    @property
    def state(self) -> str:
        return self.js("window.edgegen.state")

    def fill_form(self, n: int, seed: int, plan: str, label=None, prompt=None) -> None:
        assert self.state in ("ready", "done"), self.js("window.edgegen.error")
        self.page.fill("#n", str(n))
        self.page.fill("#seed", str(seed))
        plans = self.js("window.edgegen.pipeline.plans")
        assert plan in plans, f"the page offers plans {plans}"
        self.page.select_option("#plan", plan)
        self.page.select_option("#label", "" if label is None else str(label))
        if prompt is not None:
            self.page.fill("#prompt", prompt)

    def click_generate(self) -> tuple[str, str]:
        """Click Generate and wait; (state, error)."""
        self.page.click("#generate")
        self.page.wait_for_function("['done', 'error'].includes(window.edgegen.state)", timeout=TIMEOUT_MS)
        return tuple(self.js("[window.edgegen.state, window.edgegen.error]"))

    def generate(self, n: int, seed: int, plan: str, label=None, prompt=None) -> dict:
        """Fill the form, click Generate, wait; the samples and what the page shows."""
        self.fill_form(n, seed, plan, label, prompt)
        state, error = self.click_generate()
        assert state == "done", error
        return {"samples": np.array(self.js("Array.from(window.edgegen.last.samples)"), dtype=np.float32),
                "dims": self.js("window.edgegen.last.dims"), "plan": self.js("window.edgegen.last.plan"),
                "latency": self.page.text_content("#latency"),
                "progress": self.js("document.getElementById('progress').value")}


@pytest.fixture
def open_page(browser):
    """open_page(server[, ep, in_browser]) -> a Page of that server's bundle, with ?ep=ep (wasm)
    in the browser fixture's Chromium or in_browser (closed when the test ends)."""
    pages = []

    def open_(srv, ep: str = "wasm", in_browser=None) -> Page:
        p = Page(in_browser or browser, srv.url, ep)
        pages.append(p)
        return p
    yield open_
    for p in pages:
        p.page.close()
