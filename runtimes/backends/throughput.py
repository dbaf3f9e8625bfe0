"""Throughput mode, shared by the onnxruntime and OpenVINO backends.

Latency mode (the default) runs a network call as one request on all the threads it is given.
Throughput mode splits the call's batch into ``streams`` chunks and runs them as parallel requests
(OpenVINO: infer requests of an AsyncInferQueue on a model compiled with the THROUGHPUT hint;
onnxruntime: one session per stream, each on its own thread), then joins the outputs in order.
The call is still one network call on the whole batch to the caller, and every sample's output is
the one latency mode gives: a denoiser has no op across the batch, and the runtimes' kernels give a
sample the same result whatever the batch it is in (tests/runtimes/test_throughput.py checks the
samples are equal).
"""
from __future__ import annotations

import os

from edgegen.errors import EdgegenError

MODES = ("latency", "throughput")


def check_mode(mode: str, streams: int) -> str:
    mode = (mode or "latency").lower()
    if mode not in MODES:
        raise EdgegenError(f"unknown backend mode '{mode}' (choose {', '.join(MODES)})")
    if int(streams) < 0:
        raise EdgegenError(f"streams must be >= 0, got {streams}")
    if mode == "latency" and int(streams) > 1:
        raise EdgegenError(f"streams={streams} needs mode=throughput (latency mode runs one request)")
    return mode


def default_streams(threads: int) -> int:
    """Streams when none are asked: one per thread given, else one per core."""
    return int(threads) if threads else (os.cpu_count() or 1)


def chunk_size(batch: int, streams: int) -> int:
    """The size of every chunk when ``batch`` is split across ``streams`` requests (the last one
    may hold fewer rows)."""
    return -(-batch // max(1, min(streams, batch)))


def chunks(batch: int, streams: int) -> list[slice]:
    """Row ranges of ``batch`` split across at most ``streams`` requests, all of chunk_size rows but
    the last."""
    size = chunk_size(batch, streams)
    return [slice(i, min(i + size, batch)) for i in range(0, batch, size)]
