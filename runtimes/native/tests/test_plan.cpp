// The plan interpreter on synthetic plans whose result is known without the network:
// the ops ignore the network output, so the expected values follow from the RNG alone.
#include <cmath>
#include <nlohmann/json.hpp>

#include "helpers.hpp"

using json = nlohmann::json;
using namespace testing_edgegen;

namespace {

constexpr size_t E = 256;  // the tiny bundle's samples are 1x16x16

json base_plan() {
  return json::parse(R"({"format": "edgegen.plan/1", "sampler": "synthetic", "params": {"steps": 2},
    "registers": ["x", "eps", "x0"],
    "init": [{"op": "affine", "dst": "x", "terms": [], "noise": 1.0}],
    "steps": [
      {"t": 900.0, "src": "x", "dst": "eps", "ops": [
        {"op": "affine", "dst": "x0", "terms": [["x", 0.5], ["x", 0.25], ["eps", 0.0]], "noise": 0.1},
        {"op": "clip", "dst": "x0", "lo": -0.3, "hi": 0.3},
        {"op": "affine", "dst": "x", "terms": [["x0", 2.0], ["x", -1.0]]}]},
      {"t": 100.0, "src": "x", "dst": "eps", "ops": [
        {"op": "affine", "dst": "x", "terms": [["x", 1.0]], "noise": 0.5}]}],
    "output": "x"})");
}

std::vector<float> gaussian(uint64_t seed, uint32_t n, size_t elems, uint32_t draw) {
  std::vector<float> z(n * elems);
  EXPECT_EQ(edgegen_gaussian(seed, 0, n, elems, draw, 0, z.data(), z.size()), EDGEGEN_OK);
  return z;
}

// The same float32 arithmetic, written out by hand (terms left to right, then the noise).
std::vector<float> expected(uint64_t seed, uint32_t n) {
  const auto z0 = gaussian(seed, n, E, 0), z1 = gaussian(seed, n, E, 1), z2 = gaussian(seed, n, E, 2);
  std::vector<float> out(n * E);
  for (size_t i = 0; i < out.size(); ++i) {
    float x = z0[i];
    float x0 = 0.5f * x;
    x0 = x0 + 0.25f * x;
    x0 = x0 + 0.0f * 0.0f;  // eps term: 0 * eps (finite) adds +0
    x0 = x0 + 0.1f * z1[i];
    x0 = std::fmin(std::fmax(x0, -0.3f), 0.3f);
    float xn = 2.0f * x0;
    xn = xn + -1.0f * x;
    out[i] = xn + 0.5f * z2[i];
  }
  return out;
}

std::vector<float> run(edgegen_bundle *b, const std::string &plan, uint32_t n, uint32_t batch, uint64_t seed,
                       edgegen_status want = EDGEGEN_OK) {
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  p.plan_json = plan.c_str();
  p.n = n;
  p.batch_size = batch;
  p.seed = seed;
  size_t count = 0;
  edgegen_status s = edgegen_sample_count(b, &p, &count);
  if (s == EDGEGEN_OK) {
    std::vector<float> out(count);
    edgegen_stats st;
    s = edgegen_sample(b, &p, out.data(), out.size(), &st);
    EXPECT_STATUS(s, want);
    if (s == EDGEGEN_OK) {
      EXPECT_EQ(st.network_calls, ((n + batch - 1) / batch) * 2u);
    }
    return out;
  }
  EXPECT_STATUS(s, want);
  return {};
}

class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TEST_BUNDLE();
    b_ = load_test_bundle();
  }
  void TearDown() override { edgegen_bundle_free(b_); }
  edgegen_bundle *b_ = nullptr;
};

}  // namespace

TEST_F(PlanTest, SyntheticPlanMatchesHandArithmeticBitForBit) {
  const auto got = run(b_, base_plan().dump(), 3, 2, 11);
  EXPECT_EQ(got, expected(11, 3));
}

TEST_F(PlanTest, ResultDoesNotDependOnBatchSize) {
  const std::string plan = base_plan().dump();
  EXPECT_EQ(run(b_, plan, 5, 1, 3), run(b_, plan, 5, 64, 3));
}

TEST_F(PlanTest, RegisterWithItsOwnShapeDrawsNoiseOfThatShape) {
  json p = base_plan();
  p["registers"].push_back("z");
  p["shapes"] = {{"z", {2, 3}}};
  p["init"].push_back({{"op", "affine"}, {"dst", "z"}, {"terms", json::array()}, {"noise", 1.0}});
  p["output"] = "z";
  const auto got = run(b_, p.dump(), 4, 3, 5);
  EXPECT_EQ(got, gaussian(5, 4, 6, 1));  // the second draw of the plan, 6 values per sample
}

TEST_F(PlanTest, InvalidPlansAreRejectedWithAReason) {
  auto bad = [&](json p, edgegen_status want = EDGEGEN_ERR_MALFORMED) { run(b_, p.dump(), 1, 1, 0, want); };
  json p = base_plan();
  p["format"] = "edgegen.plan/99";
  bad(p);
  p = base_plan();
  p["steps"][0]["ops"][0]["op"] = "fancy";
  bad(p);
  p = base_plan();
  p["steps"][0]["ops"][0]["terms"][0][0] = "nope";
  bad(p);
  p = base_plan();
  p["init"] = json::array();  // x is read before it is written
  bad(p);
  p = base_plan();
  p["steps"][0]["t"] = nullptr;  // this role takes a time input
  bad(p);
  p = base_plan();
  p["shapes"] = {{"x", {3}}};  // x no longer fits the network input
  bad(p);
  p = base_plan();
  p["output"] = "y";
  bad(p);
  p = base_plan();
  p.erase("steps");
  bad(p);
  run(b_, "{not json", 1, 1, 0, EDGEGEN_ERR_MALFORMED);
  run(b_, "", 1, 1, 0, EDGEGEN_ERR_MALFORMED);
}

// Inpainting's blend op (plans.py): R = M * A + (1 - M) * B in float32. With a binary mask the
// kept elements are B (M = 0) or A (M = 1) bit for bit.
json blend_plan(bool keep_b, bool noisy_b) {
  json p = base_plan();
  p["registers"].push_back("m");
  p["registers"].push_back("k");
  p["init"].push_back({{"op", "affine"}, {"dst", "m"}, {"terms", json::array({json::array({"x", 0.0})})}});  // m = 0
  if (!keep_b) p["init"].push_back({{"op", "clip"}, {"dst", "m"}, {"lo", 1.0}, {"hi", 1.0}});  // m = 1
  json k = {{"op", "affine"}, {"dst", "k"}, {"terms", json::array({json::array({"x", 0.0})})}};
  if (noisy_b) k["noise"] = 2.0;  // draw 1, right after x's
  p["init"].push_back(k);
  p["steps"][1]["ops"].push_back({{"op", "blend"}, {"dst", "x"}, {"a", "x"}, {"b", "k"}, {"mask", "m"}});
  return p;
}

TEST_F(PlanTest, BlendKeepsTheMaskedRegistersBitForBit) {
  const auto kept_b = run(b_, blend_plan(true, true).dump(), 3, 2, 11);
  const auto zk = gaussian(11, 3, E, 1);
  for (size_t i = 0; i < kept_b.size(); ++i) ASSERT_EQ(kept_b[i], 2.0f * zk[i]) << i;
  EXPECT_EQ(run(b_, blend_plan(false, false).dump(), 3, 2, 11), expected(11, 3));  // M = 1: A, draws unchanged
}

TEST_F(PlanTest, BadBlendsAndPlanInputsAreRejected) {
  json p = base_plan();
  p["steps"][0]["ops"].push_back({{"op", "blend"}, {"dst", "x"}, {"a", "x"}, {"b", "nope"}, {"mask", "x"}});
  run(b_, p.dump(), 1, 1, 0, EDGEGEN_ERR_MALFORMED);
  p = base_plan();
  p["registers"].push_back("x_init");
  p["inputs"] = {"x_init"};  // filled from init_image (ABI 4): without one, a reason
  run(b_, p.dump(), 1, 1, 0, EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(edgegen_last_error()).find("give init_image"), std::string::npos);
  p = base_plan();
  p["registers"].push_back("z_in");
  p["inputs"] = {"z_in"};  // a register the runtime does not know how to fill
  run(b_, p.dump(), 1, 1, 0, EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(edgegen_last_error()).find("'z_in'"), std::string::npos);
}
