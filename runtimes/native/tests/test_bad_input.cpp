// Bad input through the C API: every case returns a status and a one-line message, never crashes.
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "helpers.hpp"

using namespace testing_edgegen;
namespace fs = std::filesystem;

namespace {

edgegen_status load(const std::string &path, edgegen_bundle **b, const edgegen_load_params *lp = nullptr) {
  return edgegen_bundle_load(path.c_str(), lp, b);
}

edgegen_status sample_n(edgegen_bundle *b, uint32_t n, size_t count_override = 0) {
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  p.n = n;
  std::vector<float> out(count_override ? count_override : 256);
  return edgegen_sample(b, &p, out.data(), out.size(), nullptr);
}

}  // namespace

TEST(BadInput, MissingBundle) {
  edgegen_bundle *b = reinterpret_cast<edgegen_bundle *>(0x1);
  EXPECT_STATUS(load("/nonexistent/bundle", &b), EDGEGEN_ERR_NOT_FOUND);
  EXPECT_EQ(b, nullptr);
  EXPECT_NE(std::string(edgegen_last_error()).find("/nonexistent/bundle"), std::string::npos);
  TempDir dir;  // a folder without manifest.json
  EXPECT_STATUS(load(dir.path, &b), EDGEGEN_ERR_NOT_FOUND);
}

TEST(BadInput, MalformedManifest) {
  REQUIRE_TEST_BUNDLE();
  TempDir dir;
  const std::string root = copy_bundle(dir), manifest = root + "/manifest.json";
  const std::string good = read_text(manifest);
  edgegen_bundle *b = nullptr;
  write_text(manifest, good.substr(0, good.size() / 2));
  EXPECT_STATUS(load(root, &b), EDGEGEN_ERR_MALFORMED);
  write_text(manifest, "[1, 2, 3]");
  EXPECT_STATUS(load(root, &b), EDGEGEN_ERR_MALFORMED);
  auto j = nlohmann::json::parse(good);
  j["schema_version"] = 99;
  write_text(manifest, j.dump());
  EXPECT_STATUS(load(root, &b), EDGEGEN_ERR_MALFORMED);
  j = nlohmann::json::parse(good);
  j["data"]["shape"] = "sixteen";
  write_text(manifest, j.dump());
  EXPECT_STATUS(load(root, &b), EDGEGEN_ERR_MALFORMED);
  j = nlohmann::json::parse(good);
  j.erase("roles");
  write_text(manifest, j.dump());
  EXPECT_STATUS(load(root, &b), EDGEGEN_ERR_MALFORMED);
  EXPECT_EQ(b, nullptr);
}

TEST(BadInput, Sha256MismatchAndMissingFile) {
  REQUIRE_TEST_BUNDLE();
  TempDir dir;
  const std::string root = copy_bundle(dir);
  const std::string bin = root + "/openvino/denoiser.bin";
  std::string bytes = read_text(bin);
  bytes[bytes.size() / 2] ^= 0x01;
  write_text(bin, bytes);
  edgegen_bundle *b = nullptr;
  EXPECT_STATUS(load(root, &b), EDGEGEN_ERR_INTEGRITY);
  EXPECT_NE(std::string(edgegen_last_error()).find("sha256 mismatch"), std::string::npos);
  fs::remove(root + "/onnx/denoiser.onnx");
  EXPECT_STATUS(load(root, &b), EDGEGEN_ERR_NOT_FOUND);
  EXPECT_EQ(b, nullptr);
}

TEST(BadInput, UnknownSamplerAndUnstoredPlan) {
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = load_test_bundle();
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  size_t count = 0;
  p.sampler = "euler-maruyama-nope";
  EXPECT_STATUS(edgegen_sample_count(b, &p, &count), EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(edgegen_last_error()).find("unknown sampler"), std::string::npos);
  p.sampler = "ddim";
  p.steps = 17;
  EXPECT_STATUS(edgegen_sample_count(b, &p, &count), EDGEGEN_ERR_UNSUPPORTED);
  p.steps = -3;
  EXPECT_STATUS(edgegen_sample_count(b, &p, &count), EDGEGEN_ERR_INVALID_ARGUMENT);
  edgegen_bundle_free(b);
}

TEST(BadInput, ZeroAndAbsurdN) {
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = load_test_bundle();
  EXPECT_STATUS(sample_n(b, 0), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(sample_n(b, EDGEGEN_MAX_SAMPLES + 1), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(sample_n(b, 0xFFFFFFFFu), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(sample_n(b, 2, 256), EDGEGEN_ERR_INVALID_ARGUMENT);  // buffer holds one sample only
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  size_t count = 0;
  p.n = 0;
  EXPECT_STATUS(edgegen_sample_count(b, &p, &count), EDGEGEN_ERR_INVALID_ARGUMENT);
  edgegen_bundle_free(b);
}

TEST(BadInput, BadLabelsGuidanceBatch) {
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = load_test_bundle();
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  std::vector<float> out(256);
  p.label = 10;  // the tiny model has labels 0..9 (10 is the null label)
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  p.label = -2;
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  const int64_t labels[1] = {-1};
  edgegen_sample_params_init(&p);
  p.labels = labels;
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  edgegen_sample_params_init(&p);
  p.guidance = INFINITY;
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  edgegen_sample_params_init(&p);
  p.batch_size = 0;
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  edgegen_bundle_free(b);
}

TEST(BadInput, NullPointers) {
  edgegen_bundle *b = nullptr;
  EXPECT_STATUS(edgegen_bundle_load(nullptr, nullptr, &b), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_bundle_load("x", nullptr, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  float out[256];
  size_t count;
  edgegen_bundle_info info;
  EXPECT_STATUS(edgegen_sample(nullptr, &p, out, 256, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_sample_count(nullptr, &p, &count), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_bundle_get_info(nullptr, &info), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_bundle_plan_keys(nullptr, nullptr, 0, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgegen_bundle_free(nullptr), EDGEGEN_OK);
  edgegen_load_params_init(nullptr);  // no-ops
  edgegen_sample_params_init(nullptr);
  EXPECT_EQ(edgegen_struct_size(nullptr), 0u);
  if (!have_test_bundle()) return;
  b = load_test_bundle();
  EXPECT_STATUS(edgegen_sample(b, nullptr, out, 256, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_sample(b, &p, nullptr, 256, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_sample_count(b, nullptr, &count), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_sample_count(b, &p, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_bundle_get_info(b, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(edgegen_sample(b, &p, out, 256, nullptr), EDGEGEN_OK) << "stats may be NULL";
  edgegen_bundle_free(b);
}

TEST(BadInput, FreedAndForeignHandles) {
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = load_test_bundle();
  ASSERT_EQ(edgegen_bundle_free(b), EDGEGEN_OK);
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  float out[256];
  size_t count;
  edgegen_bundle_info info;
  EXPECT_STATUS(edgegen_sample(b, &p, out, 256, nullptr), EDGEGEN_ERR_INVALID_HANDLE);
  EXPECT_STATUS(edgegen_sample_count(b, &p, &count), EDGEGEN_ERR_INVALID_HANDLE);
  EXPECT_STATUS(edgegen_bundle_get_info(b, &info), EDGEGEN_ERR_INVALID_HANDLE);
  EXPECT_STATUS(edgegen_bundle_free(b), EDGEGEN_ERR_INVALID_HANDLE);  // double free
  int not_a_handle = 0;
  EXPECT_STATUS(edgegen_sample(reinterpret_cast<edgegen_bundle *>(&not_a_handle), &p, out, 256, nullptr),
                EDGEGEN_ERR_INVALID_HANDLE);
  edgegen_bundle *b2 = load_test_bundle();  // a new bundle never reuses the freed id
  EXPECT_NE(b2, b);
  edgegen_bundle_free(b2);
}

TEST(BadInput, BackendDevicePrecision) {
  REQUIRE_TEST_BUNDLE();
  edgegen_load_params lp;
  edgegen_bundle *b = nullptr;
  edgegen_load_params_init(&lp);
  lp.backend = "directml";
  EXPECT_STATUS(load(test_bundle(), &b, &lp), EDGEGEN_ERR_UNSUPPORTED);
  edgegen_load_params_init(&lp);
  lp.device = "TPU";
  EXPECT_STATUS(load(test_bundle(), &b, &lp), EDGEGEN_ERR_UNSUPPORTED);
  edgegen_load_params_init(&lp);
  lp.precision = "int4";
  EXPECT_STATUS(load(test_bundle(), &b, &lp), EDGEGEN_ERR_UNSUPPORTED);
  edgegen_load_params_init(&lp);
  lp.max_batch = 0;
  EXPECT_STATUS(load(test_bundle(), &b, &lp), EDGEGEN_ERR_INVALID_ARGUMENT);
  edgegen_load_params_init(&lp);
  lp.num_threads = -1;
  EXPECT_STATUS(load(test_bundle(), &b, &lp), EDGEGEN_ERR_INVALID_ARGUMENT);
  if (std::string(edgegen_backends()).find("tensorrt") == std::string::npos) {
    edgegen_load_params_init(&lp);
    lp.backend = "tensorrt";
    EXPECT_STATUS(load(test_bundle(), &b, &lp), EDGEGEN_ERR_UNSUPPORTED);
  }
  EXPECT_EQ(b, nullptr);
}

TEST(BadInput, LastErrorIsPerThread) {
  edgegen_bundle *b = nullptr;
  EXPECT_NE(edgegen_bundle_load("/nonexistent/a", nullptr, &b), EDGEGEN_OK);
  std::string other;
  std::thread([&] { other = edgegen_last_error(); }).join();
  EXPECT_EQ(other, "");
  EXPECT_NE(std::string(edgegen_last_error()), "");
}

TEST(BadInput, StatusNames) {
  EXPECT_STREQ(edgegen_status_name(EDGEGEN_OK), "EDGEGEN_OK");
  EXPECT_STREQ(edgegen_status_name(EDGEGEN_ERR_INTEGRITY), "EDGEGEN_ERR_INTEGRITY");
  EXPECT_STREQ(edgegen_status_name(static_cast<edgegen_status>(1234)), "EDGEGEN_ERR_UNKNOWN_STATUS");
}
