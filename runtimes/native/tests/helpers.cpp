#include "helpers.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace testing_edgegen {

std::string test_bundle() {
  const char *env = std::getenv("EDGEGEN_TEST_BUNDLE");
  return env && *env ? env : EDGEGEN_DEFAULT_TEST_BUNDLE;
}

bool have_test_bundle() { return fs::is_regular_file(fs::path(test_bundle()) / "manifest.json"); }

std::string token_bundle() {
  const char *env = std::getenv("EDGEGEN_TOKEN_TEST_BUNDLE");
  return env && *env ? env : EDGEGEN_DEFAULT_TOKEN_BUNDLE;
}

bool have_token_bundle() { return fs::is_regular_file(fs::path(token_bundle()) / "manifest.json"); }

std::string ldm_bundle() {
  const char *env = std::getenv("EDGEGEN_LDM_TEST_BUNDLE");
  return env && *env ? env : EDGEGEN_DEFAULT_LDM_BUNDLE;
}

bool have_ldm_bundle() { return fs::is_regular_file(fs::path(ldm_bundle()) / "manifest.json"); }

TempDir::TempDir() {
  std::random_device rd;
  path = (fs::temp_directory_path() / ("edgegen-test-" + std::to_string(rd()) + std::to_string(rd()))).string();
  fs::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string copy_bundle(const TempDir &dir) {
  const std::string dst = (fs::path(dir.path) / "bundle").string();
  fs::copy(test_bundle(), dst, fs::copy_options::recursive);
  return dst;
}

std::string read_text(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string source_path(const std::string &rel) { return (fs::path(EDGEGEN_SOURCE_DIR) / rel).string(); }

edgegen_bundle *load_test_bundle() {
  edgegen_bundle *b = nullptr;
  const edgegen_status s = edgegen_bundle_load(test_bundle().c_str(), nullptr, &b);
  EXPECT_EQ(s, EDGEGEN_OK) << edgegen_last_error();
  return b;
}

void expect_one_line_error() {
  const std::string msg = edgegen_last_error();
  EXPECT_FALSE(msg.empty());
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace testing_edgegen
