// Latent text-to-image, image-to-image and inpainting through the C API (ABI 4) on the tiny LDM
// bundle (text encoder, denoiser with a context input, VAE encoder and decoder, stored edit plans)
// and the tiny DDPM (pixel space): stages, determinism, stored-plan selection by key, kept pixels,
// and bad input (each a status and one line). Parity with Python is checked in
// tests/native/test_native_ldm.py.
#include <cmath>
#include <string>
#include <vector>

#include "edgegen.hpp"
#include "helpers.hpp"

using namespace testing_edgegen;

namespace {

const int64_t PROMPT[] = {18, 53, 40, 63, 37, 62, 36, 22, 39, 62};  // "a handwritten seven" (tiny tokenizer)

class LdmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_LDM_BUNDLE();
    ASSERT_EQ(edgegen_bundle_load(ldm_bundle().c_str(), nullptr, &b_), EDGEGEN_OK) << edgegen_last_error();
    ASSERT_EQ(edgegen_bundle_stages(b_, &stages_), EDGEGEN_OK);
    ASSERT_EQ(edgegen_bundle_get_info(b_, &info_), EDGEGEN_OK);
    const size_t e = size_t(info_.sample_shape[0] * info_.sample_shape[1] * info_.sample_shape[2]);
    image_.resize(e);
    for (size_t i = 0; i < e; ++i) image_[i] = float(int(i * 37 % 255)) / 127.5f - 1.0f;  // any image in [-1, 1]
    const int64_t h = info_.sample_shape[1], w = info_.sample_shape[2];
    mask_.assign(size_t(h * w), 0.0f);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = w / 2; x < w; ++x) mask_[size_t(y * w + x)] = 1.0f;  // generate the right half
  }
  void TearDown() override { edgegen_bundle_free(b_); }

  edgegen_sample_params params(uint32_t n, uint32_t batch) const {
    edgegen_sample_params p;
    edgegen_sample_params_init(&p);
    p.n = n;
    p.seed = 5;
    p.batch_size = batch;
    p.prompt_tokens = PROMPT;
    p.prompt_len = sizeof(PROMPT) / sizeof(PROMPT[0]);
    return p;
  }
  void with_image(edgegen_sample_params &p, bool mask) const {
    p.init_image = image_.data();
    p.image_count = 1;
    p.image_channels = uint32_t(info_.sample_shape[0]);
    p.image_height = uint32_t(info_.sample_shape[1]);
    p.image_width = uint32_t(info_.sample_shape[2]);
    if (mask) {
      p.mask = mask_.data();
      p.mask_height = uint32_t(info_.sample_shape[1]);
      p.mask_width = uint32_t(info_.sample_shape[2]);
    }
  }
  edgegen_status run(const edgegen_sample_params &p, std::vector<float> &out) const {
    size_t count = 0;
    const edgegen_status s = edgegen_sample_count(b_, &p, &count);
    if (s != EDGEGEN_OK) return s;
    out.assign(count, 0.f);
    return edgegen_sample(b_, &p, out.data(), out.size(), nullptr);
  }
  edgegen_bundle *b_ = nullptr;
  edgegen_stage_info stages_{};
  edgegen_bundle_info info_{};
  std::vector<float> image_, mask_;
};

int count_steps(uint64_t, uint64_t total, void *user) {
  *static_cast<uint64_t *>(user) = total;
  return 0;
}

float max_diff(const std::vector<float> &a, const std::vector<float> &b) {
  float d = 0.f;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

TEST_F(LdmTest, StagesDescribeTheBundle) {
  EXPECT_STREQ(stages_.condition, "prompt");
  EXPECT_STREQ(stages_.generator, "plan");
  EXPECT_EQ(stages_.has_decoder, 1);
  EXPECT_EQ(stages_.has_text_encoder, 1);
  EXPECT_EQ(stages_.takes_image, 1);
  EXPECT_EQ(stages_.has_image_encoder, 1);
  EXPECT_GT(stages_.prompt_length, 10);
  EXPECT_GT(stages_.text_vocab, 63);
  EXPECT_EQ(stages_.pad_id, 0);
}

TEST_F(LdmTest, TextToImageIsDeterministicAndIndependentOfTheBatch) {
  std::vector<float> a, b, c;
  ASSERT_EQ(run(params(3, 3), a), EDGEGEN_OK) << edgegen_last_error();
  ASSERT_EQ(run(params(3, 3), b), EDGEGEN_OK);
  EXPECT_EQ(a, b);
  ASSERT_EQ(run(params(3, 1), c), EDGEGEN_OK);
  EXPECT_LE(max_diff(a, c), 1e-5f);
  for (float v : a) ASSERT_TRUE(std::isfinite(v));
  edgegen_sample_params p = params(3, 3);
  p.guidance = 1.0;  // no guidance: another sample
  std::vector<float> d;
  ASSERT_EQ(run(p, d), EDGEGEN_OK);
  EXPECT_GT(max_diff(a, d), 1e-3f);
}

TEST_F(LdmTest, ImageToImageRunsTheStoredPlanOfItsStrength) {
  uint64_t total = 0;
  edgegen_sample_params p = params(2, 2);
  with_image(p, false);
  p.progress = count_steps;
  p.progress_user = &total;
  std::vector<float> a, b;
  ASSERT_EQ(run(p, a), EDGEGEN_OK) << edgegen_last_error();  // strength NaN: 0.6
  EXPECT_EQ(total, 30u);                                      // round(0.6 x 50) steps
  p.strength = 0.3;
  ASSERT_EQ(run(p, b), EDGEGEN_OK) << edgegen_last_error();
  EXPECT_EQ(total, 15u);
  EXPECT_GT(max_diff(a, b), 1e-4f);
  p.strength = 0.45;  // not stored: says which are
  EXPECT_STATUS(run(p, a), EDGEGEN_ERR_UNSUPPORTED);
  const std::string msg = edgegen_last_error();
  EXPECT_NE(msg.find("strength 0.45"), std::string::npos) << msg;
  EXPECT_NE(msg.find("strength0.6"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--plans ddim-50@strength0.45"), std::string::npos) << msg;
}

TEST_F(LdmTest, InpaintingKeepsTheUnmaskedPixelsExactly) {
  uint64_t total = 0;
  edgegen_sample_params p = params(3, 2);
  with_image(p, true);
  p.progress = count_steps;
  p.progress_user = &total;
  std::vector<float> out;
  ASSERT_EQ(run(p, out), EDGEGEN_OK) << edgegen_last_error();
  EXPECT_EQ(total, 100u);  // the stored "-inpaint" plan: all 50 steps, 2 batches
  const size_t e = image_.size(), hw = mask_.size();
  bool generated_differs = false;
  for (size_t i = 0; i < out.size(); ++i) {
    if (mask_[i % hw] == 0.0f) ASSERT_EQ(out[i], image_[i % e]) << i;
    else generated_differs |= out[i] != image_[i % e];
  }
  EXPECT_TRUE(generated_differs);
  p.strength = 0.6;  // -strength0.6-inpaint is not in the default set: the error says how to export it
  EXPECT_STATUS(run(p, out), EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(edgegen_last_error()).find("--plans ddim-50@strength0.6@inpaint"), std::string::npos);
}

TEST_F(LdmTest, BadInputIsOneLine) {
  std::vector<float> out;
  edgegen_sample_params p = params(2, 2);
  p.prompt_tokens = nullptr;
  p.prompt_len = 0;
  EXPECT_STATUS(run(p, out), EDGEGEN_ERR_INVALID_ARGUMENT);  // no prompt
  p = params(2, 2);
  p.label = 3;
  EXPECT_STATUS(run(p, out), EDGEGEN_ERR_INVALID_ARGUMENT);  // prompt and label
  const int64_t pads[] = {0, 0, 0};
  p = params(2, 2);
  p.prompt_tokens = pads;
  p.prompt_len = 3;
  EXPECT_STATUS(run(p, out), EDGEGEN_ERR_INVALID_ARGUMENT);  // empty prompt
  EXPECT_NE(std::string(edgegen_last_error()).find("empty"), std::string::npos);
  const int64_t outside[] = {18, 9999};
  p.prompt_tokens = outside;
  p.prompt_len = 2;
  EXPECT_STATUS(run(p, out), EDGEGEN_ERR_INVALID_ARGUMENT);  // id outside the vocabulary
  std::vector<int64_t> longp(size_t(stages_.prompt_length) + 1, 18);
  p.prompt_tokens = longp.data();
  p.prompt_len = longp.size();
  EXPECT_STATUS(run(p, out), EDGEGEN_ERR_INVALID_ARGUMENT);  // too long

  auto expect_bad = [&](edgegen_sample_params q, const char *words) {
    std::vector<float> o;
    const edgegen_status s = run(q, o);
    EXPECT_NE(s, EDGEGEN_OK) << words;
    expect_one_line_error();
    EXPECT_NE(std::string(edgegen_last_error()).find(words), std::string::npos) << edgegen_last_error();
  };
  p = params(2, 2);
  with_image(p, true);
  edgegen_sample_params q = p;
  q.image_channels = 3;
  expect_bad(q, "the init image is 3x16x16, this model takes 1x16x16");
  q = p;
  q.image_height = 8;
  expect_bad(q, "the init image is 1x8x16");
  q = p;
  q.image_count = 3;  // neither 1 nor n
  expect_bad(q, "image_count must be 1");
  q = p;
  q.mask_width = 8;
  expect_bad(q, "the mask is 16x8, it must be 16x16 like the image");
  std::vector<float> half(mask_.size(), 0.5f);
  q = p;
  q.mask = half.data();
  expect_bad(q, "the mask must be binary");
  q = p;
  q.strength = 0.0;
  expect_bad(q, "strength must be in (0, 1], got 0");
  q.strength = 1.5;
  expect_bad(q, "strength must be in (0, 1], got 1.5");
  q.strength = INFINITY;
  expect_bad(q, "strength must be in (0, 1]");
  std::vector<float> bright(image_);
  bright[7] = 2.0f;
  q = p;
  q.init_image = bright.data();
  expect_bad(q, "outside the data range [-1, 1]");
  bright[7] = NAN;
  expect_bad(q, "outside the data range");
  q = params(2, 2);
  q.mask = mask_.data();
  expect_bad(q, "mask and strength need an init image");
  q = params(2, 2);
  q.strength = 0.6;
  expect_bad(q, "mask and strength need an init image");
  q = p;
  q.mask = nullptr;
  expect_bad(q, "mask is NULL but mask_height x mask_width is 16x16");
  q = p;
  q.strength = 0.45;
  expect_bad(q, "stores no ddim plan with 50 steps");
  // a plan given as JSON must take the inputs itself
  const std::string plain = R"({"format": "edgegen.plan/1", "sampler": "ddim", "registers": ["x"], "init": [{"op": "affine", "dst": "x", "terms": [], "noise": 1.0}], "steps": [{"t": 999.0, "src": "x", "dst": "x", "ops": []}], "output": "x"})";
  q = p;
  q.plan_json = plain.c_str();
  expect_bad(q, "this plan does not start from an image");
  // the bundle is still usable
  EXPECT_EQ(run(p, out), EDGEGEN_OK) << edgegen_last_error();
}

// The C++ wrapper's builders (edgegen.hpp): prompt ids, an init image, a mask.
TEST_F(LdmTest, CppWrapperBuildsImageRequests) {
  edgegen::Bundle bundle(ldm_bundle());
  EXPECT_EQ(bundle.stages().has_text_encoder, 1);
  const std::vector<int64_t> ids(std::begin(PROMPT), std::end(PROMPT));
  edgegen::SampleParams p;
  p.n = 2;
  p.prompt(ids).init(image_.data(), 1, 1, 16, 16).inpaint(mask_.data(), 16, 16);
  const std::vector<float> x = bundle.sample(p);
  ASSERT_EQ(x.size(), 2 * image_.size());
  for (size_t i = 0; i < x.size(); ++i)
    if (mask_[i % mask_.size()] == 0.0f) ASSERT_EQ(x[i], image_[i % image_.size()]);
  p.strength = 2.0;
  try {
    bundle.sample(p);
    FAIL() << "strength 2 was accepted";
  } catch (const edgegen::Exception &e) {
    EXPECT_EQ(e.status(), EDGEGEN_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("strength must be in (0, 1], got 2"), std::string::npos) << e.what();
  }
}

// Pixel-space DDPM: the image itself is x_init; a bundle without stored edits says how to export them.
TEST(PixelImageToImage, NotStoredEditsAndTokenModelsSayWhy) {
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = load_test_bundle();
  edgegen_stage_info st{};
  ASSERT_EQ(edgegen_bundle_stages(b, &st), EDGEGEN_OK);
  EXPECT_EQ(st.takes_image, 1);
  EXPECT_EQ(st.has_image_encoder, 0);
  EXPECT_EQ(st.has_text_encoder, 0);
  edgegen_bundle_info info{};
  ASSERT_EQ(edgegen_bundle_get_info(b, &info), EDGEGEN_OK);
  std::vector<float> image(size_t(info.sample_shape[0] * info.sample_shape[1] * info.sample_shape[2]), 0.25f);
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  p.n = 2;
  p.label = 1;
  p.init_image = image.data();
  p.image_channels = uint32_t(info.sample_shape[0]);
  p.image_height = uint32_t(info.sample_shape[1]);
  p.image_width = uint32_t(info.sample_shape[2]);
  p.strength = 0.6;
  size_t count = 0;
  std::vector<float> out(size_t(p.n) * image.size());
  char keys[512];
  ASSERT_EQ(edgegen_bundle_plan_keys(b, keys, sizeof(keys), nullptr), EDGEGEN_OK);
  const edgegen_status s = edgegen_sample(b, &p, out.data(), out.size(), nullptr);
  if (std::string(keys).find("strength0.6") == std::string::npos) {  // an older test bundle
    EXPECT_STATUS(s, EDGEGEN_ERR_UNSUPPORTED);
    EXPECT_NE(std::string(edgegen_last_error()).find("--plans ddim"), std::string::npos) << edgegen_last_error();
  } else {
    EXPECT_STATUS(s, EDGEGEN_OK);
  }
  const int64_t ids[] = {5, 6};
  edgegen_sample_params_init(&p);
  p.prompt_tokens = ids;  // a prompt on a model without a text encoder
  p.prompt_len = 2;
  EXPECT_STATUS(edgegen_sample_count(b, &p, &count), EDGEGEN_OK);
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size() / 2, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  edgegen_bundle_free(b);

  REQUIRE_TOKEN_BUNDLE();  // image inputs on a token model
  ASSERT_EQ(edgegen_bundle_load(token_bundle().c_str(), nullptr, &b), EDGEGEN_OK);
  const int64_t prompt[] = {5, 9, 14, 3};
  edgegen_sample_params_init(&p);
  p.prompt_tokens = prompt;
  p.prompt_len = 4;
  p.init_image = image.data();
  std::vector<float> x(4096);
  EXPECT_STATUS(edgegen_sample(b, &p, x.data(), x.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(edgegen_last_error()).find("need a diffusion model"), std::string::npos);
  edgegen_bundle_free(b);
}

}  // namespace
