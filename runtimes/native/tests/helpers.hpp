// Shared test helpers: the tiny test bundle, temporary copies of it, one-line checks.
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "edgegen.h"

namespace testing_edgegen {

// EDGEGEN_TEST_BUNDLE, else the CMake default (build/testdata/ddpm-tiny, `make native-testdata`).
std::string test_bundle();
bool have_test_bundle();
// EDGEGEN_TOKEN_TEST_BUNDLE, else the CMake default (build/testdata/dalle-tiny: a token model with
// a prompt condition and a VQ decoder, `make native-testdata`).
std::string token_bundle();
bool have_token_bundle();
// EDGEGEN_LDM_TEST_BUNDLE, else the CMake default (build/testdata/ldm-tiny: latent text-to-image,
// text encoder, VAE encoder/decoder, stored image-to-image and inpainting plans; `make native-testdata`).
std::string ldm_bundle();
bool have_ldm_bundle();
// A fresh copy of the test bundle in a temporary folder (removed by the caller's TempDir).
struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
};
std::string copy_bundle(const TempDir &dir);
std::string read_text(const std::string &path);
void write_text(const std::string &path, const std::string &text);
std::string source_path(const std::string &rel);

// Loads the test bundle with default params (asserts success).
edgegen_bundle *load_test_bundle();

// The last error is non-empty and one line.
void expect_one_line_error();

}  // namespace testing_edgegen

#define REQUIRE_TEST_BUNDLE()                                                                          \
  do {                                                                                                 \
    if (!testing_edgegen::have_test_bundle())                                                          \
      GTEST_SKIP() << "no test bundle at " << testing_edgegen::test_bundle()                          \
                   << " (run `make native-testdata` or set EDGEGEN_TEST_BUNDLE)";                      \
  } while (0)

#define REQUIRE_TOKEN_BUNDLE()                                                                         \
  do {                                                                                                 \
    if (!testing_edgegen::have_token_bundle())                                                         \
      GTEST_SKIP() << "no token test bundle at " << testing_edgegen::token_bundle()                    \
                   << " (run `make native-testdata` or set EDGEGEN_TOKEN_TEST_BUNDLE)";                \
  } while (0)

#define REQUIRE_LDM_BUNDLE()                                                                           \
  do {                                                                                                 \
    if (!testing_edgegen::have_ldm_bundle())                                                           \
      GTEST_SKIP() << "no latent test bundle at " << testing_edgegen::ldm_bundle()                     \
                   << " (run `make native-testdata` or set EDGEGEN_LDM_TEST_BUNDLE)";                  \
  } while (0)

#define EXPECT_STATUS(expr, status)                                          \
  do {                                                                       \
    const edgegen_status s_ = (expr);                                        \
    EXPECT_EQ(s_, status) << edgegen_status_name(s_) << ": " << edgegen_last_error(); \
    if (s_ != EDGEGEN_OK) testing_edgegen::expect_one_line_error();          \
  } while (0)
