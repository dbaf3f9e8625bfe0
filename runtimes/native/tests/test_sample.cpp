// Sampling the tiny bundle's stored plans through the C API: determinism, batch-size
// independence, guidance, statistics, threads. (Parity with Python: tests/native.)
#include <cmath>
#include <thread>

#include "helpers.hpp"

using namespace testing_edgegen;

namespace {

class SampleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TEST_BUNDLE();
    b_ = load_test_bundle();
  }
  void TearDown() override { edgegen_bundle_free(b_); }

  std::vector<float> sample(edgegen_sample_params p, edgegen_stats *st = nullptr) {
    size_t count = 0;
    EXPECT_EQ(edgegen_sample_count(b_, &p, &count), EDGEGEN_OK) << edgegen_last_error();
    std::vector<float> out(count);
    EXPECT_EQ(edgegen_sample(b_, &p, out.data(), out.size(), st), EDGEGEN_OK) << edgegen_last_error();
    return out;
  }
  static edgegen_sample_params params(uint32_t n, uint64_t seed) {
    edgegen_sample_params p;
    edgegen_sample_params_init(&p);
    p.n = n;
    p.seed = seed;
    return p;
  }
  edgegen_bundle *b_ = nullptr;
};

float max_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
  float m = 0.f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST_F(SampleTest, InfoDescribesTheBundle) {
  edgegen_bundle_info info;
  ASSERT_EQ(edgegen_bundle_get_info(b_, &info), EDGEGEN_OK);
  EXPECT_STREQ(info.family, "ddpm");
  ASSERT_EQ(info.sample_rank, 3);
  EXPECT_EQ(info.sample_shape[1], 16);
  EXPECT_EQ(info.num_classes, 10);
  EXPECT_EQ(info.null_label, 10);
  EXPECT_STREQ(info.device, "CPU");
  char keys[256];
  size_t needed = 0;
  ASSERT_EQ(edgegen_bundle_plan_keys(b_, keys, sizeof(keys), &needed), EDGEGEN_OK);
  EXPECT_NE(std::string(keys).find("ddim-50"), std::string::npos);
  EXPECT_EQ(needed, std::string(keys).size() + 1);
}

TEST_F(SampleTest, DefaultPlanIsDeterministicPerSeedAndInRange) {
  edgegen_stats st;
  const auto a = sample(params(3, 0), &st);
  const auto b = sample(params(3, 0));
  const auto c = sample(params(3, 1));
  ASSERT_EQ(a.size(), 3u * 256u);
  EXPECT_EQ(a, b);
  EXPECT_GT(max_abs_diff(a, c), 0.1f);
  for (float v : a) EXPECT_TRUE(v >= -1.f && v <= 1.f) << v;  // the last DDIM step mixes clipped x0 with eps at t=0
  EXPECT_EQ(st.network_calls, 50u);
  EXPECT_GT(st.network_seconds, 0.0);
  EXPECT_GE(st.total_seconds, st.network_seconds);
}

TEST_F(SampleTest, BatchSizeDoesNotChangeSamples) {
  auto p = params(5, 4);
  p.batch_size = 2;
  edgegen_stats st;
  const auto a = sample(p, &st);
  EXPECT_EQ(st.network_calls, 3u * 50u);
  p.batch_size = 5;
  EXPECT_LE(max_abs_diff(a, sample(p)), 1e-5f);
}

TEST_F(SampleTest, LabelsAndGuidance) {
  auto p = params(2, 9);
  const int64_t labels[2] = {3, 3};
  p.labels = labels;
  const auto a = sample(p);
  p.labels = nullptr;
  p.label = 3;
  EXPECT_EQ(a, sample(p));
  p.guidance = 2.0;
  edgegen_stats st;
  const auto g = sample(p, &st);
  EXPECT_GT(max_abs_diff(a, g), 1e-4f);
  EXPECT_EQ(st.network_calls, 50u);  // [x; x] with [y; null] in one call per step
}

TEST_F(SampleTest, ExplicitSamplerAndStepsSelectTheStoredPlan) {
  auto p = params(2, 5);
  const auto a = sample(p);
  p.sampler = "ddim";
  p.steps = 50;
  EXPECT_EQ(a, sample(p));
}

TEST_F(SampleTest, ConcurrentSamplesOnOneBundle) {
  const auto want = sample(params(2, 21));
  std::vector<float> r1, r2;
  std::thread t1([&] { r1 = sample(params(2, 21)); });
  std::thread t2([&] { r2 = sample(params(2, 21)); });
  t1.join();
  t2.join();
  EXPECT_EQ(r1, want);
  EXPECT_EQ(r2, want);
}
