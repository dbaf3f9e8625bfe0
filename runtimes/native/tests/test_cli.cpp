// edgegen-run: writes a PNG; bad input gives one line on stderr and exit code 2.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "helpers.hpp"

using namespace testing_edgegen;

namespace {

struct Result {
  int code;
  std::string out, err;
};

Result run_cli(const std::string &args) {
  TempDir dir;
  const std::string out = dir.path + "/stdout", err = dir.path + "/stderr";
  const std::string cmd = std::string("'") + EDGEGEN_RUN_PATH + "' " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(out), read_text(err)};
}

void expect_usage_error(const std::string &args) {
  const Result r = run_cli(args);
  EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("edgegen-run: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace

TEST(Cli, HelpAndUsageErrors) {
  EXPECT_EQ(run_cli("--help").code, 0);
  expect_usage_error("");
  expect_usage_error("/nonexistent/bundle --out x.png");
  expect_usage_error("some/bundle --n");
  expect_usage_error("some/bundle --n ten --out x.png");
  expect_usage_error("some/bundle --bogus 1 --out x.png");
}

TEST(Cli, SamplesToPngAndRejectsBadInput) {
  REQUIRE_TEST_BUNDLE();
  TempDir dir;
  const std::string b = "'" + test_bundle() + "'", png = dir.path + "/s.png";
  const Result ok = run_cli(b + " --sampler ddim --steps 50 --n 4 --seed 0 --label 3 --out " + png);
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("latency:"), std::string::npos) << ok.out;
  const std::string bytes = read_text(png);
  ASSERT_GT(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  EXPECT_FALSE(std::filesystem::exists(png + ".tmp"));
  expect_usage_error(b + " --n 0 --out " + png);
  expect_usage_error(b + " --n 4294967295 --out " + png);
  expect_usage_error(b + " --sampler nope --out " + png);
  expect_usage_error(b + " --label 99 --out " + png);
  expect_usage_error(b + " --out " + dir.path + "/s.jpg");
  expect_usage_error(b + " --plan /nonexistent.json --out " + png);
  expect_usage_error(b + " --device TPU --out " + png);
  expect_usage_error(b + " --out /nonexistent/dir/s.png");
}
