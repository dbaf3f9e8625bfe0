"""The second C example (examples/prompt_cancel.c): it generates from a prompt (text, tokenized by
the library, ABI 5; or token ids with --tokens: the same samples) with a progress bar, and Ctrl-C (SIGINT, raised from the callback at a known step through the program's
real signal handler) stops the call within one step with EDGEGEN_ERR_CANCELLED, no result, and a
bundle that stays usable."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgegen.runtimes.backends import native_backend
from edgegen.runtimes.backends.native_backend import NativeBackend

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")


@pytest.fixture(scope="module")
def example(family_bundle):
    exe = native_backend.library_path().parent / "prompt_example"
    if not exe.is_file():
        pytest.skip(f"{exe} is not built (make native)")
    bundle = Path(os.environ.get("EDGEGEN_LDM_TEST_BUNDLE") or family_bundle("ldm"))  # the C++ tests' override
    cli = Path(sys.executable).parent / "edgegen"  # `edgegen tokenize` prints the ids the C API takes
    ids = subprocess.run([str(cli), "tokenize", str(bundle), "a handwritten seven"], capture_output=True, text=True,
                         check=True).stdout.strip()
    return exe, bundle, ids


def _numbers(stdout: str) -> str:
    return re.sub(r", [0-9.]+ s \(", ", (", stdout)  # everything but the time


def test_generates_from_a_prompt_with_a_progress_bar(example):
    exe, bundle, ids = example
    r = subprocess.run([str(exe), str(bundle), "a handwritten seven", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "2 samples of 256 values" in r.stdout and "50/50 steps" in r.stderr
    parts = ids.split(",")
    while parts and parts[-1] == "0":  # edgegen tokenize prints the row padded with [PAD] (id 0)
        parts.pop()
    assert "prompt ids: " + ",".join(parts) + "\n" in r.stderr, (ids, r.stderr)
    t = subprocess.run([str(exe), str(bundle), "--tokens", ids, "2"], capture_output=True, text=True, timeout=300)
    assert t.returncode == 0 and "prompt ids" not in t.stderr, t.stderr
    assert _numbers(t.stdout) == _numbers(r.stdout)  # text and token ids: the same samples


def test_ctrl_c_cancels_within_one_step(example):
    exe, bundle, ids = example
    env = dict(os.environ, EDGEGEN_EXAMPLE_INTERRUPT_AT="7")
    r = subprocess.run([str(exe), str(bundle), "a handwritten seven", "2"], capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 130, r.stderr
    assert "cancelled after step 7" in r.stderr and "after 7 of 50 steps" in r.stderr
    assert "bundle still usable: yes" in r.stderr and r.stdout == ""


@pytest.mark.parametrize("args, words", [(["--tokens", "x,1"], "comma-separated token ids"),
                                         (["seven", "0"], "N must be 1..1024")])
def test_bad_arguments_are_one_line(example, args, words):
    exe, bundle, _ = example
    r = subprocess.run([str(exe), str(bundle), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("prompt, words", [("", "the prompt is empty"), ("a handwritten sevén", "does not know: 'é'"),
                                           ("seven " * 40, "tokens long, more than this model's text length 24")])
def test_bad_prompts_are_one_line(example, prompt, words):
    exe, bundle, _ = example
    r = subprocess.run([str(exe), str(bundle), prompt, "2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "EDGEGEN_ERR_INVALID_ARGUMENT" in r.stderr and words in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
