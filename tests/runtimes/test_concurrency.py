"""Load and concurrency in Python (issue 20): many threads, each with its own Pipeline, and many
processes sampling one bundle give the samples of a single run. The shared-safe contract these
check is in ARCHITECTURE.md ("Threads and processes")."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgegen.runtimes.api import open_pipeline

SEEDS = (0, 1, 2, 3)


def _sample(bundle: str, backend: str, seed: int) -> np.ndarray:
    return open_pipeline(bundle, backend).sample(3, seed=seed, steps=10)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_threads_with_their_own_pipeline_equal_one_run(tiny_bundle, backend):
    want = {s: _sample(str(tiny_bundle), backend, s) for s in SEEDS}
    with ThreadPoolExecutor(max_workers=4) as pool:  # each thread opens its own Pipeline
        got = list(pool.map(lambda s: (s, _sample(str(tiny_bundle), backend, s)), SEEDS * 2))
    for s, x in got:
        assert np.array_equal(x, want[s]), f"seed {s} differs when sampled from threads"


def test_threads_sharing_one_manifest_read_only(tiny_bundle):
    # a Manifest is read-only after open: threads may build their Pipelines from one
    from edgegen.runtimes.pipeline import Pipeline, open_manifest
    m = open_manifest(tiny_bundle)
    want = Pipeline(m, "onnxruntime").sample(3, seed=5, steps=10)
    with ThreadPoolExecutor(max_workers=3) as pool:
        got = list(pool.map(lambda _: Pipeline(m, "onnxruntime").sample(3, seed=5, steps=10), range(3)))
    assert all(np.array_equal(g, want) for g in got)


def test_processes_sampling_one_bundle_equal_one_run(tiny_bundle, tmp_path):
    want = [_sample(str(tiny_bundle), "onnxruntime", s) for s in SEEDS]
    code = ("import sys, numpy as np; from edgegen.runtimes.api import open_pipeline; "
            "np.save(sys.argv[2], open_pipeline(sys.argv[1], 'onnxruntime').sample(3, seed=int(sys.argv[3]), steps=10))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tiny_bundle), str(tmp_path / f"{s}.npy"), str(s)],
                              env={**os.environ, "OMP_NUM_THREADS": "1"}) for s in SEEDS]  # all at once
    assert [p.wait(timeout=600) for p in procs] == [0] * len(SEEDS)
    for s, w in zip(SEEDS, want):
        assert np.array_equal(np.load(tmp_path / f"{s}.npy"), w), f"seed {s} differs when sampled in another process"
