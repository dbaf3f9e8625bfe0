import json

import numpy as np
import pytest

from edgegen.runtimes import rng
from edgegen.runtimes.make_rng_vectors import KAT, OUT, build


@pytest.mark.parametrize("case", KAT)
def test_philox_known_answers(case):
    out = rng.philox4x32(np.array([case["counter"]], dtype=np.uint32), tuple(case["key"]))
    assert [int(v) for v in out[0]] == case["out"]


def test_committed_vectors_reproduced_bit_for_bit():
    assert json.loads(OUT.read_text()) == build()


def test_same_seed_same_noise_and_different_seed_differs():
    a = rng.gaussian(7, (4, 1, 16, 16), draw=3)
    assert np.array_equal(a, rng.gaussian(7, (4, 1, 16, 16), draw=3))
    assert not np.allclose(a, rng.gaussian(8, (4, 1, 16, 16), draw=3))
    assert not np.allclose(a, rng.gaussian(7, (4, 1, 16, 16), draw=4))
    assert not np.allclose(a, rng.gaussian(7, (4, 1, 16, 16), draw=3, stream=rng.STREAM_LATENT))


def test_sample_noise_does_not_depend_on_batching():
    whole = rng.gaussian(3, (10, 5, 3), draw=0)
    part = rng.gaussian(3, (4, 5, 3), draw=0, first_sample=6)
    assert np.array_equal(whole[6:], part)


def test_gaussian_statistics():
    z = rng.gaussian(0, (64, 4096), draw=0).astype(np.float64).ravel()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(z**4) - 3) < 0.05  # kurtosis of a normal


def test_uniform_open_interval():
    u = rng.uniform(0, 8, 1000, draw=0)
    assert u.min() > 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01


def test_seed_range_checked():
    with pytest.raises(ValueError):
        rng.seed_key(-1)
    with pytest.raises(ValueError):
        rng.seed_key(2**64)
