#include "rng.hpp"

#include <cmath>

namespace edgegen::rng {

Block philox4x32_10(Block c, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t{0xD2511F53u} * c[0];
    const uint64_t p1 = uint64_t{0xCD9E8D57u} * c[2];
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c = {hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0};
    if (r < 9) {  // the key is bumped after each of the first nine rounds
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
  }
  return c;
}

namespace {
// u = (r + 0.5) * 2^-32 in (0, 1); pairs (r0, r1) -> rad cos, rad sin, in float64 then rounded once.
inline void box_muller(uint32_t ra, uint32_t rb, float &z0, float &z1) {
  const double two_pi = 2.0 * 3.141592653589793;
  const double ua = (double(ra) + 0.5) * 0x1p-32;
  const double ub = (double(rb) + 0.5) * 0x1p-32;
  const double rad = std::sqrt(-2.0 * std::log(ua));
  const double ang = two_pi * ub;
  z0 = float(rad * std::cos(ang));
  z1 = float(rad * std::sin(ang));
}
}  // namespace

void gaussian(uint64_t seed, uint32_t first_sample, uint32_t batch, size_t elems, uint32_t draw,
              uint32_t stream, float *out) {
  const uint32_t k0 = uint32_t(seed & 0xFFFFFFFFu), k1 = uint32_t(seed >> 32);
  const size_t blocks = (elems + 3) / 4;
  for (uint32_t b = 0; b < batch; ++b) {
    float *dst = out + size_t(b) * elems;
    const uint32_t sample = first_sample + b;
    for (size_t blk = 0; blk < blocks; ++blk) {
      const Block r = philox4x32_10({uint32_t(blk), sample, draw, stream}, k0, k1);
      float z[4];
      box_muller(r[0], r[1], z[0], z[1]);
      box_muller(r[2], r[3], z[2], z[3]);
      const size_t base = blk * 4;
      for (size_t j = 0; j < 4 && base + j < elems; ++j) dst[base + j] = z[j];
    }
  }
}

}  // namespace edgegen::rng
