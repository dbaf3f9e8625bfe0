"""A few seconds of each libFuzzer harness (ASan + UBSan) when `make fuzz-build` has built them;
`make fuzz` runs them for minutes. A crash fails the test and leaves its input in tmp_path."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.security.conftest import REPO

FUZZ = REPO / "build" / "fuzz"
SECONDS = int(os.environ.get("EDGEGEN_LIBFUZZER_SECONDS", "5"))


@pytest.mark.parametrize("harness", ["manifest", "plan", "onnx"])
def test_libfuzzer_harness(harness, tmp_path):
    exe = FUZZ / f"fuzz_{harness}"
    if not exe.is_file():
        pytest.skip(f"{exe} is not built (make fuzz-build)")
    seeds = REPO / "runtimes" / "native" / "fuzz" / "corpus" / harness
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    r = subprocess.run([str(exe), f"-max_total_time={SECONDS}", "-max_len=65536", "-rss_limit_mb=2048",
                        "-timeout=10", f"-artifact_prefix={tmp_path}/", str(corpus), str(seeds)],
                       capture_output=True, text=True, timeout=SECONDS + 120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "DONE" in r.stderr
