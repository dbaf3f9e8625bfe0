"""Portable Gaussian noise: Philox4x32-10 (Salmon et al. 2011) + Box-Muller.

This is the specification the C++ runtime reproduces bit for bit.

Key and counter
    key     = (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)      seed is an unsigned 64-bit int
    counter = (block, sample, draw, stream)                       four uint32 words
      block  : index of the 4-value block inside one sample (element // 4)
      sample : global index of the sample in the request (0..n-1), so sample i gets the
               same noise whatever the batch size
      draw   : how many noise tensors the plan has drawn before this one (init noise is 0)
      stream : what the numbers are for (STREAM_NOISE = 0 for Gaussian noise of the plans,
               STREAM_LATENT = 1 for GAN latents, STREAM_TOKENS = 2 for token sampling)

Philox4x32-10 round (10 rounds, key bumped after each of the first nine)
    lo0, hi0 = 0xD2511F53 * c0   (64-bit product split in halves)
    lo1, hi1 = 0xCD9E8D57 * c2
    c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
    k0 += 0x9E3779B9; k1 += 0xBB67AE85   (mod 2**32)

Box-Muller, computed in float64 and rounded once to float32
    u = (r + 0.5) * 2**-32  for each uint32 r, so u is in (0, 1)
    from (r0, r1): rad = sqrt(-2 ln u0), z0 = rad cos(2 pi u1), z1 = rad sin(2 pi u1)
    from (r2, r3): z2, z3 likewise
    A sample of E elements uses blocks 0 .. ceil(E/4)-1 and keeps the first E values.
"""
from __future__ import annotations

import numpy as np

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)

STREAM_NOISE = 0
STREAM_LATENT = 1
STREAM_TOKENS = 2


def philox4x32(counter: np.ndarray, key: tuple[int, int], rounds: int = 10) -> np.ndarray:
    """Philox4x32 on many counters at once.

    counter: (N, 4) uint32 -> returns (N, 4) uint32.
    """
    c = [counter[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for r in range(rounds):
        p0 = PHILOX_M0 * c[0]
        p1 = PHILOX_M1 * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
        c = [hi1 ^ c[1] ^ np.uint64(k0), lo1, hi0 ^ c[3] ^ np.uint64(k1), lo0]
        if r < rounds - 1:
            k0 = (k0 + PHILOX_W0) & 0xFFFFFFFF
            k1 = (k1 + PHILOX_W1) & 0xFFFFFFFF
    return np.stack(c, axis=1).astype(np.uint32)


def seed_key(seed: int) -> tuple[int, int]:
    if seed < 0 or seed >= 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF


def uniform_bits(seed: int, samples: np.ndarray, n_elem: int, draw: int, stream: int) -> np.ndarray:
    """Raw uint32 words: (len(samples), 4 * ceil(n_elem / 4)) for the given sample indices."""
    n_blocks = (n_elem + 3) // 4
    samples = np.asarray(samples, dtype=np.uint32)
    ctr = np.zeros((len(samples), n_blocks, 4), dtype=np.uint32)
    ctr[:, :, 0] = np.arange(n_blocks, dtype=np.uint32)[None, :]
    ctr[:, :, 1] = samples[:, None]
    ctr[:, :, 2] = np.uint32(draw)
    ctr[:, :, 3] = np.uint32(stream)
    out = philox4x32(ctr.reshape(-1, 4), seed_key(seed))
    return out.reshape(len(samples), n_blocks * 4)


def box_muller(bits: np.ndarray) -> np.ndarray:
    """uint32 words (..., 4k) -> standard normals (..., 4k) float32, pairs (r0, r1), (r2, r3)."""
    u = (bits.astype(np.float64) + 0.5) * (2.0**-32)
    u_a, u_b = u[..., 0::2], u[..., 1::2]
    rad = np.sqrt(-2.0 * np.log(u_a))
    ang = 2.0 * np.pi * u_b
    z = np.empty_like(u)
    z[..., 0::2] = rad * np.cos(ang)
    z[..., 1::2] = rad * np.sin(ang)
    return z.astype(np.float32)


def gaussian(seed: int, shape: tuple[int, ...], draw: int, stream: int = STREAM_NOISE,
             first_sample: int = 0) -> np.ndarray:
    """Standard normal tensor of ``shape`` = (batch, ...) for samples first_sample.. of a request."""
    batch = shape[0]
    n_elem = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    samples = np.arange(first_sample, first_sample + batch, dtype=np.uint32)
    z = box_muller(uniform_bits(seed, samples, n_elem, draw, stream))[:, :n_elem]
    return z.reshape(shape)


def uniform(seed: int, batch: int, n: int, draw: int, stream: int = STREAM_TOKENS,
            first_sample: int = 0) -> np.ndarray:
    """Uniform float64 in (0, 1): (batch, n), from the same words Box-Muller uses."""
    samples = np.arange(first_sample, first_sample + batch, dtype=np.uint32)
    bits = uniform_bits(seed, samples, n, draw, stream)[:, :n]
    return (bits.astype(np.float64) + 0.5) * (2.0**-32)
