// Prompt text tokenized in C++ (ABI 5: edgegen_tokenize, edgegen_sample_params.prompts) on the tiny
// DALL-E and LDM bundles: normalization, padding, text = token ids, threads, and bad input (each a
// status and one line). Ids identical to Python's on a corpus: tests/native/test_native_tokenizer.py.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"

using namespace testing_edgegen;
namespace fs = std::filesystem;

namespace {

class TokenizerTest : public ::testing::TestWithParam<const char *> {
 protected:
  void SetUp() override {
    if (std::string(GetParam()) == "dalle") {
      REQUIRE_TOKEN_BUNDLE();
      path_ = token_bundle();
    } else {
      REQUIRE_LDM_BUNDLE();
      path_ = ldm_bundle();
    }
    ASSERT_EQ(edgegen_bundle_load(path_.c_str(), nullptr, &b_), EDGEGEN_OK) << edgegen_last_error();
    ASSERT_EQ(edgegen_bundle_stages(b_, &info_), EDGEGEN_OK);
    if (!info_.has_tokenizer) GTEST_SKIP() << path_ << " has no tokenizer model (rebuild it: make native-testdata)";
  }
  void TearDown() override { edgegen_bundle_free(b_); }
  std::vector<int64_t> tokenize(const char *text, size_t *used = nullptr) {
    std::vector<int64_t> ids(size_t(info_.prompt_length), -7);
    size_t len = 0;
    EXPECT_EQ(edgegen_tokenize(b_, text, ids.data(), ids.size(), &len), EDGEGEN_OK) << edgegen_last_error();
    if (used) *used = len;
    return ids;
  }
  edgegen_sample_params params() const {
    edgegen_sample_params p;
    edgegen_sample_params_init(&p);
    p.n = 2;
    p.seed = 5;
    return p;
  }
  // The generator's output for p: codes (token models) or images (plan models).
  std::vector<double> run(edgegen_sample_params p) {
    std::vector<double> out;
    if (std::string(info_.generator) == "tokens") {
      std::vector<int64_t> codes(size_t(p.n) * size_t(info_.image_tokens));
      p.codes_out = codes.data();
      p.codes_count = codes.size();
      EXPECT_EQ(edgegen_sample(b_, &p, nullptr, 0, nullptr), EDGEGEN_OK) << edgegen_last_error();
      out.assign(codes.begin(), codes.end());
    } else {
      size_t count = 0;
      EXPECT_EQ(edgegen_sample_count(b_, &p, &count), EDGEGEN_OK) << edgegen_last_error();
      std::vector<float> images(count);
      EXPECT_EQ(edgegen_sample(b_, &p, images.data(), images.size(), nullptr), EDGEGEN_OK) << edgegen_last_error();
      out.assign(images.begin(), images.end());
    }
    return out;
  }
  std::string path_;
  edgegen_bundle *b_ = nullptr;
  edgegen_stage_info info_{};
};

TEST_P(TokenizerTest, PadsAndNormalizes) {
  size_t used = 0;
  const std::vector<int64_t> ids = tokenize("a handwritten seven", &used);
  ASSERT_GT(used, 0u);
  ASSERT_LT(used, size_t(info_.prompt_length));
  for (size_t i = 0; i < used; ++i) EXPECT_NE(ids[i], info_.pad_id);
  for (size_t i = used; i < ids.size(); ++i) EXPECT_EQ(ids[i], info_.pad_id);
  // NFKC + lower case, and any run of spaces splits words alike
  EXPECT_EQ(tokenize("  A  HandWritten\tSEVEN \n"), ids);
  EXPECT_EQ(tokenize("a handwritten \xef\xbd\x93\x65ven"), ids);  // fullwidth s (U+FF53) is NFKC 's'
}

TEST_P(TokenizerTest, TextGivesTheSamplesOfItsTokenIds) {
  const char *text[] = {"a handwritten seven", "the number 3"};
  edgegen_sample_params p = params();
  p.prompts = text;
  p.prompt_count = 2;
  const std::vector<double> from_text = run(p);
  size_t used0 = 0, used1 = 0;
  std::vector<int64_t> rows = tokenize(text[0], &used0), second = tokenize(text[1], &used1);
  rows.insert(rows.end(), second.begin(), second.end());
  edgegen_sample_params q = params();
  q.prompt_tokens = rows.data();
  q.prompt_len = size_t(info_.prompt_length);
  q.prompt_count = 2;
  EXPECT_EQ(run(q), from_text);
}

TEST_P(TokenizerTest, ThreadsTokenizeOneHandleAlike) {
  const std::vector<int64_t> want = tokenize("a drawing of a handwritten four");
  std::vector<std::vector<int64_t>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 5; ++k) got[t] = tokenize("a drawing of a handwritten four");
    });
  for (auto &th : threads) th.join();
  for (const auto &g : got) EXPECT_EQ(g, want);
}

TEST_P(TokenizerTest, BadPromptsAreOneLine) {
  std::vector<int64_t> ids(size_t(info_.prompt_length));
  size_t len = 0;
  struct Case {
    const char *text;
    const char *words;
  };
  const std::string too_long = [] {
    std::string s;
    for (int i = 0; i < 40; ++i) s += "seven ";
    return s;
  }();
  const Case cases[] = {{"", "the prompt is empty: describe the image"},
                        {" \t\n\xe3\x80\x80", "the prompt is empty"},  // U+3000 is a space too
                        {too_long.c_str(), "tokens long, more than this model's text length"},
                        {"a handwritten sev\xc3\xa9n", "does not know: '\xc3\xa9' (known: "},
                        {"a\x1f" "b", "does not know: '\\x1f'"},
                        {"caf\xff", "not valid UTF-8 (at byte 3)"}};
  for (const Case &c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(edgegen_tokenize(b_, c.text, ids.data(), ids.size(), &len), EDGEGEN_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(edgegen_last_error()).find(c.words), std::string::npos) << edgegen_last_error();
    expect_one_line_error();
    edgegen_sample_params p = params();  // the same refusal from edgegen_sample
    const char *text[] = {c.text};
    p.prompts = text;
    std::vector<int64_t> codes(size_t(p.n) * size_t(std::max<int64_t>(info_.image_tokens, 1)));
    std::vector<float> out(1 << 20);
    if (std::string(info_.generator) == "tokens") {
      p.codes_out = codes.data();
      p.codes_count = size_t(p.n) * size_t(info_.image_tokens);
    }
    size_t count = 0;
    edgegen_status s = edgegen_sample_count(b_, &p, &count);
    if (s == EDGEGEN_OK) s = edgegen_sample(b_, &p, p.codes_out ? nullptr : out.data(), p.codes_out ? 0 : count, nullptr);
    EXPECT_EQ(s, EDGEGEN_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(edgegen_last_error()).find(c.words), std::string::npos) << edgegen_last_error();
    expect_one_line_error();
  }
  // the API's own misuse
  EXPECT_EQ(edgegen_tokenize(b_, nullptr, ids.data(), ids.size(), &len), EDGEGEN_ERR_INVALID_ARGUMENT);
  expect_one_line_error();
  EXPECT_EQ(edgegen_tokenize(b_, "seven", ids.data(), ids.size() - 1, &len), EDGEGEN_ERR_INVALID_ARGUMENT);
  expect_one_line_error();
  EXPECT_EQ(edgegen_tokenize(b_, "seven", nullptr, 0, &len), EDGEGEN_ERR_INVALID_ARGUMENT);
  expect_one_line_error();
  const int64_t some[] = {5, 9};
  const char *text[] = {"seven", nullptr};
  edgegen_sample_params p = params();
  p.prompts = text;
  p.prompt_tokens = some;
  p.prompt_len = 2;
  size_t count = 0;
  EXPECT_NE(edgegen_sample_count(b_, &p, &count) == EDGEGEN_OK
                ? edgegen_sample(b_, &p, nullptr, 0, nullptr) : EDGEGEN_ERR_INVALID_ARGUMENT, EDGEGEN_OK);
  expect_one_line_error();
  p = params();
  p.prompts = text;
  p.prompt_count = 2;  // the second prompt is NULL
  std::vector<int64_t> codes(size_t(p.n) * size_t(std::max<int64_t>(info_.image_tokens, 1)));
  if (std::string(info_.generator) == "tokens") {
    p.codes_out = codes.data();
    p.codes_count = codes.size();
  }
  std::vector<float> out(1 << 20);
  edgegen_status s = edgegen_sample_count(b_, &p, &count);
  if (s == EDGEGEN_OK) s = edgegen_sample(b_, &p, p.codes_out ? nullptr : out.data(), p.codes_out ? 0 : count, nullptr);
  EXPECT_EQ(s, EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(edgegen_last_error()).find("prompt text is NULL"), std::string::npos) << edgegen_last_error();
  expect_one_line_error();
  // the bundle stays usable
  EXPECT_GT(tokenize("seven").size(), 0u);
}

TEST_P(TokenizerTest, BundleWithoutTokenizerModelOrLibrary) {
  TempDir dir;
  const std::string copy = dir.path + "/bundle";
  fs::copy(path_, copy, fs::copy_options::recursive);
  nlohmann::json m = nlohmann::json::parse(read_text(copy + "/manifest.json"));
  m["pipeline"]["condition"]["tokenizer"].erase("openvino");
  m["files"].erase("tokenizer_openvino");
  m["files"].erase("tokenizer_openvino_weights");
  write_text(copy + "/manifest.json", m.dump());
  edgegen_bundle *old = nullptr;
  ASSERT_EQ(edgegen_bundle_load(copy.c_str(), nullptr, &old), EDGEGEN_OK) << edgegen_last_error();
  edgegen_stage_info info{};
  ASSERT_EQ(edgegen_bundle_stages(old, &info), EDGEGEN_OK);
  EXPECT_EQ(info.has_tokenizer, 0);
  std::vector<int64_t> ids(size_t(info.prompt_length));
  size_t len = 0;
  EXPECT_EQ(edgegen_tokenize(old, "seven", ids.data(), ids.size(), &len), EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(edgegen_last_error()).find("has no tokenizer model"), std::string::npos);
  expect_one_line_error();
  edgegen_bundle_free(old);

  // the extension library is looked up on first use: a fresh handle with a wrong path
  ASSERT_EQ(setenv("EDGEGEN_OV_TOKENIZERS", "/nonexistent/libopenvino_tokenizers.so", 1), 0);
  edgegen_bundle *fresh = nullptr;
  ASSERT_EQ(edgegen_bundle_load(path_.c_str(), nullptr, &fresh), EDGEGEN_OK) << edgegen_last_error();
  const edgegen_status s = edgegen_tokenize(fresh, "seven", ids.data(), ids.size(), &len);
  unsetenv("EDGEGEN_OV_TOKENIZERS");
  EXPECT_EQ(s, EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(edgegen_last_error()).find("extension library was not found at /nonexistent/"), std::string::npos)
      << edgegen_last_error();
  expect_one_line_error();
  EXPECT_EQ(edgegen_tokenize(fresh, "seven", ids.data(), ids.size(), &len), EDGEGEN_OK) << edgegen_last_error();
  edgegen_bundle_free(fresh);
}

INSTANTIATE_TEST_SUITE_P(Prompt, TokenizerTest, ::testing::Values("dalle", "ldm"));

TEST(TokenizerMisuse, PlanBundleAndBadHandle) {
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = load_test_bundle();
  int64_t ids[4];
  size_t len = 0;
  EXPECT_EQ(edgegen_tokenize(b, "seven", ids, 4, &len), EDGEGEN_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(edgegen_last_error()).find("takes no prompt"), std::string::npos) << edgegen_last_error();
  expect_one_line_error();
  edgegen_bundle_free(b);
  EXPECT_EQ(edgegen_tokenize(b, "seven", ids, 4, &len), EDGEGEN_ERR_INVALID_HANDLE);
  expect_one_line_error();
}

}  // namespace
