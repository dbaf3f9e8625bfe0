"""The three libFuzzer harnesses (ASan + UBSan), run at the same time for EDGEGEN_LIBFUZZER_SECONDS
(default 20) each from the committed seeds; `make fuzz` runs them for minutes.

`make test` builds them first (`make fuzz-build`, clang-14 from APT_PKGS) and sets
EDGEGEN_REQUIRE_FUZZ=1, so a missing build fails there; a plain pytest run skips them. A crash,
leak, UBSan report or timeout fails the test and leaves its input in the test's tmp folder.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.security.conftest import REPO

FUZZ = REPO / "build" / "fuzz"
SECONDS = int(os.environ.get("EDGEGEN_LIBFUZZER_SECONDS", "20"))
HARNESSES = ("manifest", "plan", "onnx")


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory) -> dict:
    """{harness: (exit status, stderr)}: all three started at once (two cores: 20 s of wall time)."""
    missing = [h for h in HARNESSES if not (FUZZ / f"fuzz_{h}").is_file()]
    if missing:
        why = f"{FUZZ}/fuzz_{missing[0]} is not built (make fuzz-build)"
        if os.environ.get("EDGEGEN_REQUIRE_FUZZ") == "1":
            pytest.fail(why)
        pytest.skip(why)
    procs = {}
    for h in HARNESSES:
        work = tmp_path_factory.mktemp(f"fuzz_{h}")
        (work / "corpus").mkdir()
        seeds = REPO / "runtimes" / "native" / "fuzz" / "corpus" / h
        procs[h] = subprocess.Popen(
            [str(FUZZ / f"fuzz_{h}"), f"-max_total_time={SECONDS}", "-max_len=65536", "-rss_limit_mb=2048",
             "-timeout=10", "-print_final_stats=1", f"-artifact_prefix={work}/", str(work / "corpus"), str(seeds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = {}
    for h, p in procs.items():
        try:
            _, err = p.communicate(timeout=SECONDS + 180)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        out[h] = (p.returncode, err)
    return out


@pytest.mark.parametrize("harness", HARNESSES)
def test_libfuzzer_harness(harness, fuzz_runs):
    rc, err = fuzz_runs[harness]
    assert rc == 0, err[-3000:]
    assert "DONE" in err
    runs = [ln for ln in err.splitlines() if ln.startswith("stat::number_of_executed_units")]
    print(harness, runs[-1] if runs else "")
