// Portable Gaussian noise: Philox4x32-10 + Box-Muller, the specification in runtimes/rng.py,
// reproduced bit for bit (checked against runtimes/testdata/rng_vectors.json by
// tests/web/test_browser.py). Written by hand: no npm package implements this exact counter
// scheme (block, sample, draw, stream) and float32 rounding.

export const STREAM_NOISE = 0;
export const STREAM_LATENT = 1;
export const STREAM_TOKENS = 2;

const M0 = 0xD2511F53;
const M1 = 0xCD9E8D57;
const W0 = 0x9E3779B9;
const W1 = 0xBB67AE85;
const TWO_POW_M32 = 2 ** -32;

// High 32 bits of the 64-bit product of two uint32 (JS numbers hold 53 bits: split in 16-bit halves).
function mulhi32(a, b) {
  const aLo = a & 0xFFFF, aHi = a >>> 16, bLo = b & 0xFFFF, bHi = b >>> 16;
  const loLo = aLo * bLo, hiLo = aHi * bLo, loHi = aLo * bHi, hiHi = aHi * bHi;
  const cross = (loLo >>> 16) + (hiLo & 0xFFFF) + loHi; // < 2**33, exact in a double
  return (hiHi + (hiLo >>> 16) + Math.floor(cross / 65536)) >>> 0;
}

/** Philox4x32 of one counter [c0, c1, c2, c3] under key [k0, k1] -> Uint32Array(4). */
export function philox4x32(counter, key, rounds = 10, out = new Uint32Array(4)) {
  let c0 = counter[0] >>> 0, c1 = counter[1] >>> 0, c2 = counter[2] >>> 0, c3 = counter[3] >>> 0;
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let r = 0; r < rounds; r++) {
    const hi0 = mulhi32(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    if (r < rounds - 1) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
  return out;
}

/** seed (a Number below 2**53, or a BigInt below 2**64) -> [lo, hi] uint32 key words. */
export function seedKey(seed) {
  const s = BigInt(seed);
  if (s < 0n || s >= 2n ** 64n) throw new RangeError(`seed must be in [0, 2**64), got ${seed}`);
  return [Number(s & 0xFFFFFFFFn), Number((s >> 32n) & 0xFFFFFFFFn)];
}

/**
 * Standard normals for samples firstSample .. firstSample+batch-1 of a request, each of nElem
 * values: a Float32Array(batch * nElem), sample-major (the layout of a (batch, ...) tensor).
 * Box-Muller in float64 (same operation order as rng.py), rounded once to float32.
 */
export function gaussian(seed, batch, nElem, draw, stream = STREAM_NOISE, firstSample = 0) {
  const key = seedKey(seed);
  const out = new Float32Array(batch * nElem);
  const words = new Uint32Array(4);
  const ctr = [0, 0, draw >>> 0, stream >>> 0];
  const blocks = Math.ceil(nElem / 4);
  for (let b = 0; b < batch; b++) {
    ctr[1] = (firstSample + b) >>> 0;
    const base = b * nElem;
    for (let blk = 0; blk < blocks; blk++) {
      ctr[0] = blk;
      philox4x32(ctr, key, 10, words);
      for (let p = 0; p < 4; p += 2) {
        const uA = (words[p] + 0.5) * TWO_POW_M32;
        const uB = (words[p + 1] + 0.5) * TWO_POW_M32;
        const rad = Math.sqrt(-2.0 * Math.log(uA));
        const ang = 2.0 * Math.PI * uB;
        const i = blk * 4 + p;
        if (i < nElem) out[base + i] = rad * Math.cos(ang); // Float32Array stores round to nearest
        if (i + 1 < nElem) out[base + i + 1] = rad * Math.sin(ang);
      }
    }
  }
  return out;
}

/** Uniform float64 in (0, 1) from the same words (token sampling), Float64Array(batch * n). */
export function uniform(seed, batch, n, draw, stream = STREAM_TOKENS, firstSample = 0) {
  const key = seedKey(seed);
  const out = new Float64Array(batch * n);
  const words = new Uint32Array(4);
  const ctr = [0, 0, draw >>> 0, stream >>> 0];
  for (let b = 0; b < batch; b++) {
    ctr[1] = (firstSample + b) >>> 0;
    for (let blk = 0; blk < Math.ceil(n / 4); blk++) {
      ctr[0] = blk;
      philox4x32(ctr, key, 10, words);
      for (let j = 0; j < 4 && blk * 4 + j < n; j++) out[b * n + blk * 4 + j] = (words[j] + 0.5) * TWO_POW_M32;
    }
  }
  return out;
}
