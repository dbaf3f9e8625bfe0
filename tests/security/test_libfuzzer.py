"""The four libFuzzer harnesses (ASan + UBSan), run at the same time for EDGEGEN_LIBFUZZER_SECONDS
(default 20) each from the committed seeds; `make fuzz` runs them for minutes. fuzz_sample samples
from the tiny test bundle (build/testdata/ddpm-tiny, `make native-testdata`, EDGEGEN_FUZZ_BUNDLE).
Every committed reproducer under runtimes/native/fuzz/regressions/<harness>/ is run once first.

`make test` builds them first (`make fuzz-build`, clang-14 from APT_PKGS) and sets
EDGEGEN_REQUIRE_FUZZ=1, so a missing build fails there; a plain pytest run skips them. A crash,
leak, UBSan report or timeout fails the test and leaves its input in the test's tmp folder.
"""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.security.conftest import REPO

FUZZ = REPO / "build" / "fuzz"
SECONDS = int(os.environ.get("EDGEGEN_LIBFUZZER_SECONDS", "20"))
HARNESSES = ("manifest", "plan", "onnx", "sample")
SEEDS = REPO / "runtimes" / "native" / "fuzz"
BUNDLE = REPO / "build" / "testdata" / "ddpm-tiny"
MAX_LEN = {"sample": 4096}  # fuzz_sample: the plan JSON tail bounds the plan's length, so its cost


def _env(harness: str) -> dict:
    return {**os.environ, "EDGEGEN_FUZZ_BUNDLE": str(BUNDLE)} if harness == "sample" else dict(os.environ)


def _fresh(cmd: list) -> list:
    """``cmd`` run by a shell that forks it: a process started straight from pytest inherits
    pytest's peak RSS as its own (Linux keeps ru_maxrss across fork + exec), and libFuzzer reads
    that for -rss_limit_mb; a grandchild of a small shell starts from the shell's."""
    return ["sh", "-c", '"$0" "$@"; exit $?', *cmd]


def _require(why: str) -> None:
    if os.environ.get("EDGEGEN_REQUIRE_FUZZ") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory) -> dict:
    """{harness: (exit status, stderr)}: all four started at once (two cores: 20 s of wall time)."""
    missing = [h for h in HARNESSES if not (FUZZ / f"fuzz_{h}").is_file()]
    if missing:
        _require(f"{FUZZ}/fuzz_{missing[0]} is not built (make fuzz-build)")
    if not (BUNDLE / "manifest.json").is_file():
        _require(f"{BUNDLE} is missing (make native-testdata)")
    procs = {}
    for h in HARNESSES:
        work = tmp_path_factory.mktemp(f"fuzz_{h}")
        (work / "corpus").mkdir()
        seeds = SEEDS / "corpus" / h
        procs[h] = subprocess.Popen(
            _fresh([str(FUZZ / f"fuzz_{h}"), f"-max_total_time={SECONDS}", f"-max_len={MAX_LEN.get(h, 65536)}",
                    "-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1", f"-artifact_prefix={work}/",
                    str(work / "corpus"), str(seeds)]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(h), start_new_session=True)
    out = {}
    for h, p in procs.items():
        try:
            _, err = p.communicate(timeout=SECONDS + 180)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the shell and the fuzzer
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


def _regressions() -> list:
    return sorted(p for h in HARNESSES for p in (SEEDS / "regressions" / h).glob("*") if p.is_file())


@pytest.mark.parametrize("case", _regressions(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_libfuzzer_regression(case):
    """A committed input that once crashed a harness now runs clean (libFuzzer runs a file once)."""
    harness = case.parent.name
    if not (FUZZ / f"fuzz_{harness}").is_file():
        _require(f"{FUZZ}/fuzz_{harness} is not built (make fuzz-build)")
    if harness == "sample" and not (BUNDLE / "manifest.json").is_file():
        _require(f"{BUNDLE} is missing (make native-testdata)")
    p = subprocess.run(_fresh([str(FUZZ / f"fuzz_{harness}"), "-timeout=10", "-rss_limit_mb=2048", str(case)]),
                       capture_output=True, text=True, timeout=120, env=_env(harness))
    assert p.returncode == 0, p.stderr[-3000:]
