"""n x sample size above the 16 GiB bound is a one-line error before anything is allocated, in
Python as in the native library (tests/security/test_schema.py::test_huge_sample_request_is_a_clear_error)."""
from __future__ import annotations

import tracemalloc

import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.pipeline import MAX_OUTPUT_FLOATS, check_output_size, open_pipeline
from tests.security.conftest import load, save

BIG = [1, 4096, 4096]  # 16M floats a sample (within the schema's per-sample limit)


def test_bound_matches_the_native_library():
    elems = 4096 * 4096
    check_output_size(MAX_OUTPUT_FLOATS // elems, BIG)  # exactly at the bound: allowed
    with pytest.raises(EdgegenError, match="16 GiB"):
        check_output_size(MAX_OUTPUT_FLOATS // elems + 1, BIG)
    assert MAX_OUTPUT_FLOATS * 4 == 16 * 2**30


def test_huge_request_refused_before_allocation(bundle, capsys):
    data = load(bundle)
    data["data"]["shape"] = BIG
    save(bundle, data)
    pipe = open_pipeline(bundle)
    tracemalloc.start()
    try:
        with pytest.raises(EdgegenError, match="more than the 16 GiB one call may return"):
            pipe.sample(300, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # 300 x 16M floats would be 19 GiB
    from edgegen.cli import main
    assert main(["sample", str(bundle), "--n", "300", "--quiet", "--out", str(bundle.parent / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "16 GiB" in err[0]
    assert not (bundle.parent / "x.png").exists()
