"""Throughput mode (runtimes/backends/throughput.py): a call's batch split across parallel requests
gives the samples latency mode gives, on onnxruntime and OpenVINO (tiny DDPM)."""
from __future__ import annotations

import numpy as np
import pytest

from edgegen.errors import EdgegenError
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import throughput

TOL = 1e-5  # the gate: within 1e-5 (they come out bit-equal on the machines seen so far)


def test_chunks_cover_the_batch_in_order():
    for batch in (1, 2, 5, 16, 17):
        for streams in (1, 2, 3, 4, 32):
            parts = throughput.chunks(batch, streams)
            rows = [i for s in parts for i in range(s.start, s.stop)]
            assert rows == list(range(batch))
            assert len(parts) <= min(streams, batch)
            size = throughput.chunk_size(batch, streams)
            assert all(s.stop - s.start == size for s in parts[:-1]) and 0 < parts[-1].stop - parts[-1].start <= size


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_throughput_samples_equal_latency_samples(tiny_bundle, backend):
    m = open_manifest(tiny_bundle)
    kw = dict(seed=3, batch_size=16, sampler="ddim", steps=6, eta=1.0)  # eta 1: a noise draw every step
    ref = Pipeline(m, backend, threads=1).sample(16, **kw)
    for streams in (2, 3):  # 3: uneven chunks (6, 6, 4; OpenVINO pads the last one)
        pipe = Pipeline(m, backend, threads=2, mode="throughput", streams=streams)
        assert pipe.backend.mode == "throughput" and pipe.backend.streams == streams
        got = pipe.sample(16, **kw)
        assert got.shape == ref.shape
        diff = float(np.abs(got - ref).max())
        assert diff <= TOL, f"{backend} throughput streams={streams}: max abs {diff:.2e} from latency mode"
        # it really split the batch: the chunks ran on separate requests / sessions
        if backend == "onnxruntime":
            assert len(pipe.backend.pool_sessions) == streams
        else:
            assert list(pipe.backend._queues) == [throughput.chunk_size(16, streams)]
    # a batch smaller than the streams, and batch 1, still give latency mode's samples
    for n in (1, 5):
        pipe = Pipeline(m, backend, threads=2, mode="throughput", streams=3)
        small = pipe.sample(n, **{**kw, "batch_size": n})
        assert float(np.abs(small - ref[:n]).max()) <= TOL


def test_onnxruntime_inter_op_settings_keep_the_samples(tiny_bundle):
    m = open_manifest(tiny_bundle)
    kw = dict(seed=0, batch_size=8, sampler="ddim", steps=4)
    ref = Pipeline(m, "onnxruntime", threads=1).sample(8, **kw)
    got = Pipeline(m, "onnxruntime", threads=1, inter_op_threads=2, execution_mode="parallel").sample(8, **kw)
    assert float(np.abs(got - ref).max()) <= TOL


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_bad_mode_options_are_one_line_errors(tiny_bundle, backend):
    m = open_manifest(tiny_bundle)
    with pytest.raises(EdgegenError, match="unknown backend mode 'fast'"):
        Pipeline(m, backend, mode="fast")
    with pytest.raises(EdgegenError, match="needs mode=throughput"):
        Pipeline(m, backend, streams=2)
    with pytest.raises(EdgegenError, match="streams must be >= 0"):
        Pipeline(m, backend, mode="throughput", streams=-1)
    if backend == "onnxruntime":
        with pytest.raises(EdgegenError, match="execution_mode"):
            Pipeline(m, backend, execution_mode="fast")


def test_cli_sample_throughput_mode_writes_latency_samples(tiny_bundle, tmp_path):
    import subprocess
    import sys
    arrays = {}
    for mode in ("latency", "throughput"):
        out = tmp_path / f"{mode}.png"
        res = subprocess.run([sys.executable, "-m", "edgegen.cli", "sample", str(tiny_bundle), "--backend", "openvino",
                              "--mode", mode, "--streams", "2" if mode == "throughput" else "0", "--sampler", "ddim",
                              "--steps", "4", "--n", "6", "--batch-size", "6", "--out", str(out), "--quiet"],
                             capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stderr
        arrays[mode] = np.load(tmp_path / f"{mode}.npy")
    assert float(np.abs(arrays["throughput"] - arrays["latency"]).max()) <= TOL
