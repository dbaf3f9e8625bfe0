"""Progress and cancellation through the native runtime (issue 17): the Pipeline's callback is
called from inside the C++ plan loop after every network step, and returning False cancels."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from edgegen.errors import Cancelled
from edgegen.runtimes.api import Pipeline, open_manifest
from edgegen.runtimes.backends import native_backend
from edgegen.runtimes.backends.native_backend import NativeBackend

REASON = NativeBackend.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native runtime not available: {REASON}")


@pytest.fixture(scope="module")
def pipe(tiny_bundle):
    p = Pipeline(open_manifest(tiny_bundle), "native")
    yield p
    p.backend.close()


def test_abi_and_mirrors():
    lib = native_backend._load()
    assert lib.edgegen_abi_version() == native_backend.ABI_VERSION == 5
    assert lib.edgegen_status_name(native_backend.CANCELLED) == b"EDGEGEN_ERR_CANCELLED"


def test_callback_sees_every_step_across_batches(pipe):
    seen = []
    out = pipe.sample(5, seed=3, batch_size=2, steps=10, callback=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 30) for i in range(1, 31)]  # 3 batches x 10 steps, counted across batches
    ref = pipe.sample(5, seed=3, batch_size=2, steps=10)
    np.testing.assert_array_equal(out, ref)


def test_same_progress_as_the_python_interpreter(tiny_bundle, pipe):
    py = Pipeline(open_manifest(tiny_bundle), "openvino")
    a, b = [], []
    x = pipe.sample(3, seed=1, batch_size=2, steps=5, callback=lambda d, t: a.append((d, t)))
    y = py.sample(3, seed=1, batch_size=2, steps=5, callback=lambda d, t: b.append((d, t)))
    assert a == b
    assert np.abs(x - y).max() <= 1e-4


def test_returning_false_cancels_and_the_bundle_stays_usable(pipe):
    seen = []

    def stop_at_7(done, total):
        seen.append(done)
        return done < 7

    with pytest.raises(Cancelled, match="cancelled by the callback after 7 of 20 steps"):
        pipe.sample(3, seed=0, batch_size=2, steps=10, callback=stop_at_7)
    assert seen == list(range(1, 8))
    assert pipe.sample(2, steps=10).shape[0] == 2  # not cancelled afterwards


def test_an_exception_in_the_callback_stops_the_run_and_propagates(pipe):
    def boom(done, total):
        if done == 2:
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        pipe.sample(1, steps=10, callback=boom)


def test_cancel_from_another_thread(pipe):
    reached, go_on = threading.Event(), threading.Event()
    steps = []

    def wait_at_3(done, total):
        steps.append(done)
        if done == 3:
            reached.set()
            go_on.wait(30)

    def canceller():
        reached.wait(30)
        pipe.backend.cancel()
        go_on.set()

    t = threading.Thread(target=canceller)
    t.start()
    with pytest.raises(Cancelled, match="cancelled by edgegen_cancel after 3 of 10 steps"):
        pipe.sample(1, steps=10, callback=wait_at_3)
    t.join()
    assert steps == [1, 2, 3]
    pipe.backend.cancel()  # idle: a no-op
    assert pipe.sample(1, steps=10).shape[0] == 1
