// The token loop through the C API (ABI 3) on the tiny DALL-E bundle (prompt token ids, KV-cache
// step network, VQ decoder): batch-size independence, codes vs decoded images, sampling settings,
// progress and cancellation, and bad input (each a status and one line). Parity with Python is
// checked in tests/native/test_native_tokens.py.
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"

using namespace testing_edgegen;

namespace {

const int64_t PROMPT[] = {5, 9, 14, 3};  // any ids of the text vocabulary

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TOKEN_BUNDLE();
    ASSERT_EQ(edgegen_bundle_load(token_bundle().c_str(), nullptr, &b_), EDGEGEN_OK) << edgegen_last_error();
    ASSERT_EQ(edgegen_bundle_stages(b_, &info_), EDGEGEN_OK);
  }
  void TearDown() override { edgegen_bundle_free(b_); }
  edgegen_sample_params params(uint32_t n, uint32_t batch) const {
    edgegen_sample_params p;
    edgegen_sample_params_init(&p);
    p.n = n;
    p.seed = 3;
    p.batch_size = batch;
    p.prompt_tokens = PROMPT;
    p.prompt_len = 4;
    return p;
  }
  // codes (and images when `images` is set) for params p
  edgegen_status run(edgegen_sample_params p, std::vector<int64_t> &codes, std::vector<float> *images = nullptr) {
    codes.assign(size_t(p.n) * size_t(info_.image_tokens), -1);
    p.codes_out = codes.data();
    p.codes_count = codes.size();
    if (!images) return edgegen_sample(b_, &p, nullptr, 0, nullptr);
    size_t count = 0;
    const edgegen_status s = edgegen_sample_count(b_, &p, &count);
    if (s != EDGEGEN_OK) return s;
    images->assign(count, 0.f);
    return edgegen_sample(b_, &p, images->data(), images->size(), nullptr);
  }
  edgegen_bundle *b_ = nullptr;
  edgegen_stage_info info_{};
};

TEST_F(TokenTest, StagesDescribeTheBundle) {
  EXPECT_STREQ(info_.condition, "prompt");
  EXPECT_STREQ(info_.generator, "tokens");
  EXPECT_EQ(info_.has_decoder, 1);
  EXPECT_GT(info_.image_tokens, 0);
  EXPECT_EQ(info_.grid[0] * info_.grid[1], info_.image_tokens);
  EXPECT_GT(info_.prompt_length, 4);
  EXPECT_GE(info_.pad_id, 0);
  EXPECT_EQ(edgegen_struct_size("edgegen_stage_info"), sizeof(edgegen_stage_info));
  size_t needed = 0;  // token models store no plans
  ASSERT_EQ(edgegen_bundle_plan_keys(b_, nullptr, 0, &needed), EDGEGEN_OK);
  EXPECT_EQ(needed, 1u);
}

TEST_F(TokenTest, SameTokensForAnyBatchSizeAndDecodedImagesMatchTheCodes) {
  std::vector<int64_t> ref, got;
  std::vector<float> images, decoded;
  ASSERT_EQ(run(params(5, 5), ref, &images), EDGEGEN_OK) << edgegen_last_error();
  for (int64_t c : ref) ASSERT_TRUE(c >= 0 && c < 1 << 20);
  for (uint32_t b : {1u, 2u, 3u, 64u}) {
    ASSERT_EQ(run(params(5, b), got), EDGEGEN_OK) << edgegen_last_error();
    EXPECT_EQ(got, ref) << "batch " << b;
  }
  decoded.assign(images.size(), 0.f);
  ASSERT_EQ(edgegen_decode(b_, ref.data(), ref.size(), 5, 2, decoded.data(), decoded.size()), EDGEGEN_OK)
      << edgegen_last_error();
  EXPECT_EQ(decoded, images);  // the same decoder, same batches' values
  edgegen_sample_params p = params(5, 5);  // a different seed gives different tokens
  p.seed = 4;
  ASSERT_EQ(run(p, got), EDGEGEN_OK);
  EXPECT_NE(got, ref);
}

TEST_F(TokenTest, GreedyIgnoresTheSeedAndSettingsAreChecked) {
  std::vector<int64_t> a, b;
  edgegen_sample_params p = params(3, 2);
  p.temperature = 0.0;
  ASSERT_EQ(run(p, a), EDGEGEN_OK);
  p.seed = 99;
  ASSERT_EQ(run(p, b), EDGEGEN_OK);
  EXPECT_EQ(a, b);
  p.top_k = 1;  // top-1 sampling is greedy too
  p.temperature = 1.0;
  ASSERT_EQ(run(p, b), EDGEGEN_OK);
  EXPECT_EQ(a, b);
  for (auto set : std::vector<void (*)(edgegen_sample_params &)>{
           [](edgegen_sample_params &q) { q.temperature = -1; }, [](edgegen_sample_params &q) { q.temperature = INFINITY; },
           [](edgegen_sample_params &q) { q.top_k = -2; }, [](edgegen_sample_params &q) { q.top_p = 0.0; },
           [](edgegen_sample_params &q) { q.top_p = 1.5; }}) {
    edgegen_sample_params q = params(1, 1);
    set(q);
    EXPECT_STATUS(run(q, b), EDGEGEN_ERR_INVALID_ARGUMENT);
  }
}

TEST_F(TokenTest, ProgressCountsTokensAcrossBatchesAndCancels) {
  struct Seen {
    uint64_t calls = 0, last_total = 0, stop_at = 0;
  } seen;
  auto fn = [](uint64_t done, uint64_t total, void *u) {
    auto *s = static_cast<Seen *>(u);
    ++s->calls;
    s->last_total = total;
    return s->stop_at != 0 && done == s->stop_at ? 1 : 0;
  };
  std::vector<int64_t> ref, got;
  ASSERT_EQ(run(params(3, 2), ref), EDGEGEN_OK);
  edgegen_sample_params p = params(3, 2);
  p.progress = fn;
  p.progress_user = &seen;
  ASSERT_EQ(run(p, got), EDGEGEN_OK);
  EXPECT_EQ(seen.calls, uint64_t(2 * info_.image_tokens));
  EXPECT_EQ(seen.last_total, uint64_t(2 * info_.image_tokens));
  EXPECT_EQ(got, ref);
  seen = Seen{};
  seen.stop_at = 5;
  EXPECT_STATUS(run(p, got), EDGEGEN_ERR_CANCELLED);
  EXPECT_NE(std::string(edgegen_last_error()).find("cancelled by the callback after 5 of"), std::string::npos);
  EXPECT_EQ(seen.calls, 5u);
  ASSERT_EQ(run(params(3, 2), got), EDGEGEN_OK);  // the bundle stays usable
  EXPECT_EQ(got, ref);
  // cancel twice from the callback: still one cancellation, and later calls run normally
  struct Twice {
    edgegen_bundle *b;
  } twice{b_};
  p.progress = [](uint64_t done, uint64_t, void *u) {
    if (done == 2) {
      edgegen_cancel(static_cast<Twice *>(u)->b);
      edgegen_cancel(static_cast<Twice *>(u)->b);
    }
    return 0;
  };
  p.progress_user = &twice;
  EXPECT_STATUS(run(p, got), EDGEGEN_ERR_CANCELLED);
  EXPECT_NE(std::string(edgegen_last_error()).find("by edgegen_cancel after 2 of"), std::string::npos);
  ASSERT_EQ(run(params(3, 2), got), EDGEGEN_OK);
  EXPECT_EQ(got, ref);
}

TEST_F(TokenTest, BadPromptsAndBuffers) {
  std::vector<int64_t> codes;
  std::vector<float> images;
  edgegen_sample_params p = params(2, 2);
  const std::vector<int64_t> pads(size_t(info_.prompt_length), info_.pad_id);
  p.prompt_tokens = pads.data();  // empty: padding only
  p.prompt_len = pads.size();
  EXPECT_STATUS(run(p, codes), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(edgegen_last_error()).find("the prompt is empty"), std::string::npos);
  p.prompt_len = 0;  // empty: no ids, NULL pointer
  p.prompt_tokens = nullptr;
  EXPECT_STATUS(run(p, codes), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(edgegen_last_error()).find("takes a prompt"), std::string::npos);
  const std::vector<int64_t> longer(size_t(info_.prompt_length) + 1, 5);  // one id too many
  p.prompt_tokens = longer.data();
  p.prompt_len = longer.size();
  EXPECT_STATUS(run(p, codes), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(edgegen_last_error()).find("more than this model's text length"), std::string::npos);
  p.prompt_tokens = nullptr;  // a length without ids
  p.prompt_len = 3;
  EXPECT_STATUS(run(p, codes), EDGEGEN_ERR_INVALID_ARGUMENT);
  const int64_t outside[] = {5, info_.text_vocab};
  p.prompt_tokens = outside;
  p.prompt_len = 2;
  EXPECT_STATUS(run(p, codes), EDGEGEN_ERR_INVALID_ARGUMENT);
  p = params(2, 2);
  p.prompt_count = 3;  // neither 1 nor n
  EXPECT_STATUS(run(p, codes), EDGEGEN_ERR_INVALID_ARGUMENT);
  p = params(2, 2);
  p.label = 3;  // a prompt and a label
  EXPECT_STATUS(run(p, codes), EDGEGEN_ERR_INVALID_ARGUMENT);
  p = params(2, 2);
  p.steps = 10;  // plan options on a token model
  EXPECT_STATUS(run(p, codes), EDGEGEN_ERR_INVALID_ARGUMENT);
  p = params(2, 2);  // codes_count that does not match n x image_tokens
  codes.assign(3, 0);
  p.codes_out = codes.data();
  p.codes_count = codes.size();
  EXPECT_STATUS(edgegen_sample(b_, &p, nullptr, 0, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  p = params(2, 2);  // no output at all
  EXPECT_STATUS(edgegen_sample(b_, &p, nullptr, 0, nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  images.assign(7, 0.f);  // wrong out_count
  EXPECT_STATUS(edgegen_sample(b_, &p, images.data(), images.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  const std::vector<int64_t> bad_codes(size_t(info_.image_tokens), 1 << 20);  // outside the codebook
  images.assign(size_t(info_.image_tokens) * 1024, 0.f);
  EXPECT_STATUS(edgegen_decode(b_, bad_codes.data(), bad_codes.size(), 1, 1, images.data(), images.size()),
                EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_decode(b_, nullptr, 0, 1, 1, images.data(), images.size()), EDGEGEN_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(run(params(2, 2), codes), EDGEGEN_OK) << edgegen_last_error();  // still usable
}

TEST(TokenSampling, NextTokensFromLogits) {
  const float logits[] = {0.f, 2.f, 2.f, -1.f, 1.f, 0.f, 0.f, 0.f};  // 2 rows x 4; ties
  const double u[] = {0.5, 0.999};
  int64_t out[2] = {-1, -1};
  ASSERT_EQ(edgegen_next_tokens(logits, 2, 4, u, 0.0, 0, 1.0, out), EDGEGEN_OK);
  EXPECT_EQ(out[0], 1);  // greedy: the first of the tied largest
  EXPECT_EQ(out[1], 0);
  ASSERT_EQ(edgegen_next_tokens(logits, 2, 4, u, 1.0, 1, 1.0, out), EDGEGEN_OK);
  EXPECT_EQ(out[0], 1);  // top-1
  ASSERT_EQ(edgegen_next_tokens(logits, 2, 4, u, 1.0, 0, 1.0, out), EDGEGEN_OK);
  EXPECT_EQ(out[1], 3);  // u near 1: the least likely token of row 2 (order 0, 1, 2, 3 by index on ties)
  EXPECT_STATUS(edgegen_next_tokens(logits, 2, 4, u, -1.0, 0, 1.0, out), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_next_tokens(nullptr, 2, 4, u, 1.0, 0, 1.0, out), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_next_tokens(logits, 2, 0, u, 1.0, 0, 1.0, out), EDGEGEN_ERR_INVALID_ARGUMENT);
}

// A plan bundle refuses token options, and a token bundle refuses plan calls; the callback of a
// call that cannot run is never called.
TEST(TokenMisuse, CallbackOnACallThatCannotRun) {
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = load_test_bundle();
  uint64_t calls = 0;
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  p.progress = [](uint64_t, uint64_t, void *u) { return ++*static_cast<uint64_t *>(u) > 0 ? 0 : 0; };
  p.progress_user = &calls;
  p.prompt_tokens = PROMPT;
  p.prompt_len = 4;
  std::vector<float> out(256);
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  p.prompt_tokens = nullptr;
  p.prompt_len = 0;
  std::vector<int64_t> codes(4);
  p.codes_out = codes.data();
  p.codes_count = codes.size();
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  p.codes_out = nullptr;
  p.codes_count = 0;
  p.sampler = "ddim";
  p.steps = 7;  // not stored
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_STATUS(edgegen_decode(b, codes.data(), codes.size(), 1, 1, out.data(), out.size()), EDGEGEN_ERR_UNSUPPORTED);
  edgegen_bundle_free(b);
  p.steps = 0;  // a freed handle
  EXPECT_STATUS(edgegen_sample(b, &p, out.data(), out.size(), nullptr), EDGEGEN_ERR_INVALID_HANDLE);
  EXPECT_STATUS(edgegen_cancel(b), EDGEGEN_ERR_INVALID_HANDLE);
  EXPECT_EQ(calls, 0u);
}

}  // namespace
