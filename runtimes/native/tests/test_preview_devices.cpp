// Previews and per-stage devices through the C API (ABI 5), on the tiny DDPM (pixel space, DDIM with
// a clipped x0) and the tiny LDM (DDIM without clipping: the plan's preview_ops; the VAE decoder
// decodes each preview). The previews' parity with the Python interpreter's is checked in
// tests/native/test_native_preview.py.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "edgegen.hpp"
#include "helpers.hpp"

using namespace testing_edgegen;

namespace {

const int64_t PROMPT[] = {18, 53, 40, 63, 37, 62, 36, 22, 39, 62};  // "a handwritten seven" (tiny tokenizer)

struct Shown {
  std::vector<uint64_t> done;
  uint64_t total = 0;
  std::vector<std::vector<float>> images;
  std::vector<uint32_t> n;
  uint32_t c = 0, h = 0, w = 0;
  uint64_t stop_at = 0;  // return non-zero at this done (0: never)
  int progress_calls = 0;
};

int record(uint64_t done, uint64_t total, const float *image, uint32_t n, uint32_t c, uint32_t h, uint32_t w,
           void *user) {
  auto *s = static_cast<Shown *>(user);
  s->done.push_back(done);
  s->total = total;
  s->n.push_back(n);
  s->c = c;
  s->h = h;
  s->w = w;
  s->images.emplace_back(image, image + size_t(n) * c * h * w);
  return s->stop_at != 0 && done == s->stop_at ? 1 : 0;
}

int count_progress(uint64_t, uint64_t, void *user) {
  ++static_cast<Shown *>(user)->progress_calls;
  return 0;
}

// The bundle's stored plan `key` as JSON, "" when the bundle was exported before plans named their
// x0 register (then the preview tests skip: `rm -rf build/testdata && make native-testdata`).
std::string stored_preview_plan(const std::string &bundle, const std::string &key) {
  const nlohmann::json m = nlohmann::json::parse(read_text(bundle + "/manifest.json"));
  if (!m.contains("plans") || !m["plans"].contains(key)) return "";
  const nlohmann::json &plan = m["plans"][key];
  return plan.contains("preview") ? plan.dump() : std::string();
}

#define SKIP_WITHOUT_PREVIEW(plan)                                                                       \
  if ((plan).empty())                                                                                  \
  GTEST_SKIP() << "the test bundle was exported before previews (rm -rf build/testdata && make native-testdata)"

edgegen_status run(edgegen_bundle *b, const edgegen_sample_params &p, std::vector<float> &out) {
  size_t count = 0;
  const edgegen_status s = edgegen_sample_count(b, &p, &count);
  if (s != EDGEGEN_OK) return s;
  out.assign(count, 0.f);
  return edgegen_sample(b, &p, out.data(), out.size(), nullptr);
}

edgegen_sample_params params(uint32_t n, uint32_t batch, bool prompt) {
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  p.n = n;
  p.seed = 5;
  p.batch_size = batch;
  if (prompt) {
    p.prompt_tokens = PROMPT;
    p.prompt_len = sizeof(PROMPT) / sizeof(PROMPT[0]);
  }
  return p;
}

std::vector<float> slice(const std::vector<float> &v, size_t from, size_t count) {
  return std::vector<float>(v.begin() + from, v.begin() + from + count);
}

}  // namespace

TEST(PreviewAbi, Defaults) {
  edgegen_sample_params p;
  std::memset(&p, 0xab, sizeof(p));
  edgegen_sample_params_init(&p);
  EXPECT_EQ(p.preview, nullptr);
  EXPECT_EQ(p.preview_user, nullptr);
  EXPECT_EQ(p.preview_every, 1u);
  edgegen_load_params lp;
  std::memset(&lp, 0xab, sizeof(lp));
  edgegen_load_params_init(&lp);
  EXPECT_EQ(lp.text_encoder_device, nullptr);
  EXPECT_EQ(lp.denoiser_device, nullptr);
  EXPECT_EQ(lp.decoder_device, nullptr);
  EXPECT_EQ(edgegen_struct_size("edgegen_stage_info"), sizeof(edgegen_stage_info));
}

TEST(PreviewDdpm, EveryKStepsAcrossBatchesTheLastIsTheSample) {
  REQUIRE_TEST_BUNDLE();
  SKIP_WITHOUT_PREVIEW(stored_preview_plan(test_bundle(), "ddim-50"));
  edgegen_bundle *b = load_test_bundle();
  std::vector<float> ref, got;
  edgegen_sample_params p = params(3, 2, false);  // 2 batches x 50 DDIM steps
  ASSERT_EQ(run(b, p, ref), EDGEGEN_OK) << edgegen_last_error();
  Shown s;
  p.preview = record;
  p.preview_user = &s;
  p.preview_every = 10;
  ASSERT_EQ(run(b, p, got), EDGEGEN_OK) << edgegen_last_error();
  EXPECT_EQ(got, ref);  // a preview does not change the samples
  EXPECT_EQ(s.done, (std::vector<uint64_t>{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}));
  EXPECT_EQ(s.total, 100u);
  EXPECT_EQ(s.n, (std::vector<uint32_t>{2, 2, 2, 2, 2, 1, 1, 1, 1, 1}));
  EXPECT_EQ(s.c, 1u);
  EXPECT_EQ(s.h, 16u);
  EXPECT_EQ(s.w, 16u);
  // DDIM's last step returns its (clipped) x0 prediction: the last preview of a batch is its samples
  EXPECT_EQ(s.images[4], slice(ref, 0, 2 * 256));
  EXPECT_EQ(s.images[9], slice(ref, 2 * 256, 256));
  for (float v : s.images[0]) ASSERT_TRUE(v >= -1.0f && v <= 1.0f);  // clipped to the data range
  EXPECT_GT(std::fabs(s.images[0][0] - s.images[4][0]) + std::fabs(s.images[0][100] - s.images[4][100]), 0.0f);
  edgegen_bundle_free(b);
}

TEST(PreviewDdpm, NonZeroCancelsAndTheBundleStaysUsable) {
  REQUIRE_TEST_BUNDLE();
  SKIP_WITHOUT_PREVIEW(stored_preview_plan(test_bundle(), "ddim-50"));
  edgegen_bundle *b = load_test_bundle();
  std::vector<float> ref, got;
  edgegen_sample_params p = params(2, 2, false);
  ASSERT_EQ(run(b, p, ref), EDGEGEN_OK) << edgegen_last_error();
  Shown s;
  s.stop_at = 20;
  p.preview = record;
  p.preview_user = &s;
  p.progress = count_progress;
  p.progress_user = &s;
  EXPECT_STATUS(run(b, p, got), EDGEGEN_ERR_CANCELLED);
  EXPECT_STREQ(edgegen_last_error(), "cancelled by the preview callback after 20 of 50 steps");
  EXPECT_EQ(s.done.size(), 20u);
  EXPECT_EQ(s.progress_calls, 19);  // the preview comes before that step's progress callback
  p.preview = nullptr;
  p.progress = nullptr;
  ASSERT_EQ(run(b, p, got), EDGEGEN_OK) << edgegen_last_error();
  EXPECT_EQ(got, ref);
  edgegen_bundle_free(b);
}

TEST(PreviewDdpm, APlanWithoutAnX0RegisterIsRefused) {
  REQUIRE_TEST_BUNDLE();
  const std::string stored = stored_preview_plan(test_bundle(), "ddim-50");
  SKIP_WITHOUT_PREVIEW(stored);
  nlohmann::json plan = nlohmann::json::parse(stored);
  plan.erase("preview");  // as an SDE or flow plan: no x0 named
  for (auto &st : plan["steps"]) st.erase("preview_ops");
  const std::string text = plan.dump();
  edgegen_bundle *b = load_test_bundle();
  Shown s;
  edgegen_sample_params p = params(1, 1, false);
  p.plan_json = text.c_str();
  p.preview = record;
  p.preview_user = &s;
  std::vector<float> out;
  EXPECT_STATUS(run(b, p, out), EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(edgegen_last_error()).find("no preview"), std::string::npos) << edgegen_last_error();
  EXPECT_TRUE(s.done.empty());
  p.preview = nullptr;
  EXPECT_EQ(run(b, p, out), EDGEGEN_OK) << edgegen_last_error();  // the same plan samples without one
  // a preview_ops entry that writes anything but the preview register is a malformed plan
  nlohmann::json bad = nlohmann::json::parse(stored);
  bad["steps"][0]["preview_ops"] = nlohmann::json::parse(R"([{"op": "affine", "dst": "x", "terms": [["x", 1.0]]}])");
  const std::string bad_text = bad.dump();
  p.plan_json = bad_text.c_str();
  EXPECT_STATUS(run(b, p, out), EDGEGEN_ERR_MALFORMED);
  edgegen_bundle_free(b);
}

TEST(PreviewTokens, RefusedForTokenModels) {
  REQUIRE_TOKEN_BUNDLE();
  edgegen_bundle *b = nullptr;
  ASSERT_EQ(edgegen_bundle_load(token_bundle().c_str(), nullptr, &b), EDGEGEN_OK) << edgegen_last_error();
  Shown s;
  edgegen_sample_params p = params(1, 1, false);
  p.preview = record;
  p.preview_user = &s;
  std::vector<int64_t> codes(4096);
  p.codes_out = codes.data();
  EXPECT_STATUS(edgegen_sample(b, &p, nullptr, 0, nullptr), EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(edgegen_last_error()).find("no preview for token models"), std::string::npos);
  EXPECT_TRUE(s.done.empty());
  edgegen_bundle_free(b);
}

TEST(PreviewLdm, DecodedX0TheLastIsTheDecodedSample) {
  REQUIRE_LDM_BUNDLE();
  SKIP_WITHOUT_PREVIEW(stored_preview_plan(ldm_bundle(), "ddim-50-noclip"));
  edgegen_bundle *b = nullptr;
  ASSERT_EQ(edgegen_bundle_load(ldm_bundle().c_str(), nullptr, &b), EDGEGEN_OK) << edgegen_last_error();
  edgegen_bundle_info info{};
  ASSERT_EQ(edgegen_bundle_get_info(b, &info), EDGEGEN_OK);
  std::vector<float> ref, got;
  edgegen_sample_params p = params(2, 2, true);
  ASSERT_EQ(run(b, p, ref), EDGEGEN_OK) << edgegen_last_error();
  Shown s;
  p.preview = record;
  p.preview_user = &s;
  p.preview_every = 25;
  ASSERT_EQ(run(b, p, got), EDGEGEN_OK) << edgegen_last_error();
  EXPECT_EQ(got, ref);
  EXPECT_EQ(s.done, (std::vector<uint64_t>{25, 50}));
  EXPECT_EQ(int64_t(s.c), info.sample_shape[0]);  // decoded: the images, not the latents
  EXPECT_EQ(int64_t(s.h), info.sample_shape[1]);
  EXPECT_EQ(int64_t(s.w), info.sample_shape[2]);
  EXPECT_EQ(s.images[1], ref);  // the last x0 prediction is the final latent: the same decode
  edgegen_bundle_free(b);
}

namespace {

edgegen_status load_on(const std::string &bundle, const char *text, const char *denoiser, const char *decoder,
                       edgegen_bundle **out) {
  edgegen::LoadParams lp;
  lp.devices(text, denoiser, decoder);
  return edgegen_bundle_load(bundle.c_str(), &lp, out);
}

}  // namespace

TEST(StageDevices, CpuPerStageEqualsTheDefaultAndIsReported) {
  REQUIRE_LDM_BUNDLE();
  edgegen_bundle *a = nullptr, *b = nullptr;
  ASSERT_EQ(edgegen_bundle_load(ldm_bundle().c_str(), nullptr, &a), EDGEGEN_OK) << edgegen_last_error();
  ASSERT_EQ(load_on(ldm_bundle(), "CPU", "CPU", "CPU", &b), EDGEGEN_OK) << edgegen_last_error();
  std::vector<float> x, y;
  const edgegen_sample_params p = params(2, 2, true);
  ASSERT_EQ(run(a, p, x), EDGEGEN_OK) << edgegen_last_error();
  ASSERT_EQ(run(b, p, y), EDGEGEN_OK) << edgegen_last_error();
  EXPECT_EQ(x, y);
  edgegen_stage_info st{};
  ASSERT_EQ(edgegen_bundle_stages(b, &st), EDGEGEN_OK);
  EXPECT_STREQ(st.text_encoder_device, "CPU");
  EXPECT_STREQ(st.denoiser_device, "CPU");
  EXPECT_STREQ(st.decoder_device, "CPU");
  edgegen_bundle_free(a);
  edgegen_bundle_free(b);
}

TEST(StageDevices, VirtualDevicesOverTheCpuRun) {
  REQUIRE_LDM_BUNDLE();
  edgegen_bundle *a = nullptr;
  ASSERT_EQ(edgegen_bundle_load(ldm_bundle().c_str(), nullptr, &a), EDGEGEN_OK) << edgegen_last_error();
  std::vector<float> ref, got;
  const edgegen_sample_params p = params(2, 2, true);
  ASSERT_EQ(run(a, p, ref), EDGEGEN_OK) << edgegen_last_error();
  edgegen_bundle_free(a);
  for (const char *dev : {"AUTO", "AUTO:CPU", "HETERO:CPU", "MULTI:CPU"}) {
    edgegen_bundle *b = nullptr;
    ASSERT_EQ(load_on(ldm_bundle(), dev, dev, dev, &b), EDGEGEN_OK) << dev << ": " << edgegen_last_error();
    ASSERT_EQ(run(b, p, got), EDGEGEN_OK) << dev << ": " << edgegen_last_error();
    float diff = 0.f;
    for (size_t i = 0; i < ref.size(); ++i) diff = std::max(diff, std::fabs(ref[i] - got[i]));
    EXPECT_LE(diff, 1e-5f) << dev;  // the same CPU plugin underneath
    edgegen_stage_info st{};
    ASSERT_EQ(edgegen_bundle_stages(b, &st), EDGEGEN_OK);
    EXPECT_STREQ(st.denoiser_device, dev);
    edgegen_bundle_free(b);
  }
}

TEST(StageDevices, AMissingDeviceFailsNamingTheStage) {
  REQUIRE_LDM_BUNDLE();
  struct Case {
    const char *text, *denoiser, *decoder, *stage, *device;
  };
  const Case cases[] = {
      {"GPU", nullptr, nullptr, "text encoder", "GPU"},
      {nullptr, "NPU", nullptr, "denoiser", "NPU"},
      {nullptr, nullptr, "GPU", "decoder", "GPU"},
      {nullptr, "HETERO:GPU,CPU", nullptr, "denoiser", "GPU"},
      {nullptr, nullptr, "TPU", "decoder", "TPU"},
  };
  for (const Case &c : cases) {
    edgegen_bundle *b = reinterpret_cast<edgegen_bundle *>(0x1);
    EXPECT_STATUS(load_on(ldm_bundle(), c.text, c.denoiser, c.decoder, &b), EDGEGEN_ERR_UNSUPPORTED);
    EXPECT_EQ(b, nullptr);
    const std::string err = edgegen_last_error();
    EXPECT_EQ(err.rfind(std::string("the ") + c.stage + " stage on device '", 0), 0u) << err;
    EXPECT_NE(err.find(c.device), std::string::npos) << err;
  }
}

TEST(StageDevices, AStageTheBundleLacksIgnoresItsDevice) {
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = nullptr;
  ASSERT_EQ(load_on(test_bundle(), "GPU", "CPU", "GPU", &b), EDGEGEN_OK) << edgegen_last_error();  // no text encoder, no decoder
  edgegen_stage_info st{};
  ASSERT_EQ(edgegen_bundle_stages(b, &st), EDGEGEN_OK);
  EXPECT_STREQ(st.text_encoder_device, "");
  EXPECT_STREQ(st.denoiser_device, "CPU");
  EXPECT_STREQ(st.decoder_device, "");
  edgegen_bundle_free(b);
}
