// Philox4x32-10 + Box-Muller, bit for bit the stream of runtimes/rng.py (its docstring is the spec).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace edgegen::rng {

constexpr uint32_t STREAM_NOISE = 0;
constexpr uint32_t STREAM_LATENT = 1;
constexpr uint32_t STREAM_TOKENS = 2;

using Block = std::array<uint32_t, 4>;

Block philox4x32_10(Block counter, uint32_t k0, uint32_t k1);

// Standard normals for samples first_sample .. first_sample+batch-1, `elems` values each,
// written row-major to out[batch * elems].
void gaussian(uint64_t seed, uint32_t first_sample, uint32_t batch, size_t elems, uint32_t draw,
              uint32_t stream, float *out);

}  // namespace edgegen::rng
