"""Regenerate runtimes/testdata/rng_vectors.json, the committed cross-language RNG vectors.

    python -m edgegen.runtimes.make_rng_vectors

Python's tests check the implementation still reproduces this file bit for bit; the
C++ runtime's tests read the same file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgegen.paths import atomic_write_text
from edgegen.runtimes import rng

OUT = Path(__file__).parent / "testdata" / "rng_vectors.json"

# Random123's published known-answer vectors for philox4x32-10.
KAT = [
    {"counter": [0, 0, 0, 0], "key": [0, 0], "out": [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]},
    {"counter": [0xFFFFFFFF] * 4, "key": [0xFFFFFFFF] * 2, "out": [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]},
    {"counter": [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], "key": [0xA4093822, 0x299F31D0],
     "out": [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]},
]

CASES = [  # (seed, shape, draw, stream, first_sample)
    (0, (2, 1, 4, 4), 0, rng.STREAM_NOISE, 0),
    (1234, (3, 7), 5, rng.STREAM_NOISE, 10),
    (2**40 + 17, (1, 2, 3), 999, rng.STREAM_LATENT, 0),
]


def build() -> dict:
    gaussian = []
    for seed, shape, draw, stream, first in CASES:
        z = rng.gaussian(seed, shape, draw, stream, first)
        gaussian.append({"seed": seed, "shape": list(shape), "draw": draw, "stream": stream, "first_sample": first,
                         "float32_bits": [int(b) for b in z.reshape(-1).view(np.uint32)]})
    return {"spec": "see runtimes/rng.py", "philox4x32_10": KAT, "gaussian": gaussian}


if __name__ == "__main__":
    atomic_write_text(OUT, json.dumps(build(), indent=1))
    print(f"wrote {OUT}")
