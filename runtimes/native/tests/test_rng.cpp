// The Philox stream reproduces runtimes/testdata/rng_vectors.json (written by Python) bit for bit.
#include <cstring>
#include <nlohmann/json.hpp>

#include "helpers.hpp"

using json = nlohmann::json;
using namespace testing_edgegen;

namespace {
json vectors() { return json::parse(read_text(source_path("runtimes/testdata/rng_vectors.json"))); }
}  // namespace

TEST(Rng, PhiloxKnownAnswers) {
  const json v = vectors();
  ASSERT_GE(v["philox4x32_10"].size(), 3u);
  for (const auto &kat : v["philox4x32_10"]) {
    const auto counter = kat["counter"].get<std::vector<uint32_t>>();
    const auto key = kat["key"].get<std::vector<uint32_t>>();
    uint32_t out[4];
    ASSERT_EQ(edgegen_philox4x32_10(counter.data(), key.data(), out), EDGEGEN_OK);
    EXPECT_EQ(std::vector<uint32_t>(out, out + 4), kat["out"].get<std::vector<uint32_t>>());
  }
}

TEST(Rng, GaussianVectorsBitForBit) {
  const json v = vectors();
  ASSERT_GE(v["gaussian"].size(), 3u);
  for (const auto &c : v["gaussian"]) {
    const auto shape = c["shape"].get<std::vector<size_t>>();
    size_t elems = 1;
    for (size_t i = 1; i < shape.size(); ++i) elems *= shape[i];
    std::vector<float> z(shape[0] * elems);
    ASSERT_EQ(edgegen_gaussian(c["seed"].get<uint64_t>(), c["first_sample"].get<uint32_t>(), uint32_t(shape[0]), elems,
                               c["draw"].get<uint32_t>(), c["stream"].get<uint32_t>(), z.data(), z.size()),
              EDGEGEN_OK);
    const auto bits = c["float32_bits"].get<std::vector<uint32_t>>();
    ASSERT_EQ(bits.size(), z.size());
    for (size_t i = 0; i < z.size(); ++i) {
      uint32_t b;
      std::memcpy(&b, &z[i], 4);
      EXPECT_EQ(b, bits[i]) << "seed " << c["seed"] << " element " << i;
    }
  }
}

TEST(Rng, SampleIndexNotBatchDecidesTheNoise) {
  std::vector<float> all(5 * 10), one(10);
  ASSERT_EQ(edgegen_gaussian(7, 0, 5, 10, 3, 0, all.data(), all.size()), EDGEGEN_OK);
  ASSERT_EQ(edgegen_gaussian(7, 3, 1, 10, 3, 0, one.data(), one.size()), EDGEGEN_OK);
  EXPECT_EQ(std::vector<float>(all.begin() + 30, all.begin() + 40), one);
}

TEST(Rng, BadArguments) {
  uint32_t c[4] = {0, 0, 0, 0}, k[2] = {0, 0}, out[4];
  EXPECT_STATUS(edgegen_philox4x32_10(nullptr, k, out), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_philox4x32_10(c, nullptr, out), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_philox4x32_10(c, k, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  float z[4];
  EXPECT_STATUS(edgegen_gaussian(0, 0, 1, 4, 0, 0, nullptr, 4), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_gaussian(0, 0, 1, 4, 0, 0, z, 3), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_gaussian(0, 0, 0xFFFFFFFFu, SIZE_MAX / 2, 0, 0, z, 4), EDGEGEN_ERR_INVALID_ARGUMENT);
}
