// Progress callback and cancellation through the C API (ABI 2): step counts across batches,
// cancelling from the callback and from another thread, cancel as a no-op, bad handles.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"

using namespace testing_edgegen;

namespace {

struct Calls {
  std::vector<std::pair<uint64_t, uint64_t>> seen;  // (done, total)
  uint64_t stop_at = 0;                            // return non-zero at this done (0: never)
};

int record(uint64_t done, uint64_t total, void *user) {
  auto *c = static_cast<Calls *>(user);
  c->seen.emplace_back(done, total);
  return c->stop_at != 0 && done == c->stop_at ? 1 : 0;
}

class ProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TEST_BUNDLE();
    b_ = load_test_bundle();
  }
  void TearDown() override { edgegen_bundle_free(b_); }
  static edgegen_sample_params params(uint32_t n, uint32_t batch) {
    edgegen_sample_params p;
    edgegen_sample_params_init(&p);
    p.n = n;
    p.seed = 7;
    p.batch_size = batch;
    return p;
  }
  edgegen_status run(const edgegen_sample_params &p, std::vector<float> &out) {
    size_t count = 0;
    EXPECT_EQ(edgegen_sample_count(b_, &p, &count), EDGEGEN_OK) << edgegen_last_error();
    out.assign(count, 0.f);
    return edgegen_sample(b_, &p, out.data(), out.size(), nullptr);
  }
  edgegen_bundle *b_ = nullptr;
};

TEST(ProgressAbi, VersionStatusAndDefaults) {
  EXPECT_EQ(edgegen_abi_version(), 5);
  EXPECT_EQ(EDGEGEN_ABI_VERSION, 5);
  EXPECT_STREQ(edgegen_status_name(EDGEGEN_ERR_CANCELLED), "EDGEGEN_ERR_CANCELLED");
  EXPECT_EQ(edgegen_struct_size("edgegen_sample_params"), sizeof(edgegen_sample_params));
  edgegen_sample_params p;
  std::memset(&p, 0xab, sizeof(p));
  edgegen_sample_params_init(&p);
  EXPECT_EQ(p.progress, nullptr);
  EXPECT_EQ(p.progress_user, nullptr);
  EXPECT_TRUE(std::isnan(p.temperature));  // ABI 3: the bundle's token sampling defaults
  EXPECT_EQ(p.top_k, -1);
  EXPECT_TRUE(std::isnan(p.top_p));
  EXPECT_EQ(p.prompt_tokens, nullptr);
  EXPECT_EQ(p.prompt_len, 0u);
  EXPECT_EQ(p.prompt_count, 1u);
  EXPECT_EQ(p.codes_out, nullptr);
  EXPECT_EQ(p.codes_count, 0u);
}

TEST_F(ProgressTest, EveryStepAcrossBatchesAndSameSamples) {
  std::vector<float> ref, got;
  edgegen_sample_params p = params(5, 2);  // 3 batches x 50 DDIM steps (the bundle's default plan)
  ASSERT_EQ(run(p, ref), EDGEGEN_OK) << edgegen_last_error();
  Calls c;
  p.progress = record;
  p.progress_user = &c;
  ASSERT_EQ(run(p, got), EDGEGEN_OK) << edgegen_last_error();
  ASSERT_EQ(c.seen.size(), 150u);
  for (size_t i = 0; i < c.seen.size(); ++i) {
    EXPECT_EQ(c.seen[i].first, i + 1);
    EXPECT_EQ(c.seen[i].second, 150u);
  }
  EXPECT_EQ(got, ref);  // the callback does not change the samples
}

TEST_F(ProgressTest, CallbackCancelsAndBundleStaysUsable) {
  std::vector<float> out, ref, again;
  edgegen_sample_params p = params(3, 2);  // 2 batches x 50 = 100 steps
  ASSERT_EQ(run(p, ref), EDGEGEN_OK);
  Calls c;
  c.stop_at = 57;  // inside the second batch
  p.progress = record;
  p.progress_user = &c;
  edgegen_stats st{-1.0, -1.0, 99};
  size_t count = 0;
  ASSERT_EQ(edgegen_sample_count(b_, &p, &count), EDGEGEN_OK);
  out.assign(count, 0.f);
  EXPECT_STATUS(edgegen_sample(b_, &p, out.data(), out.size(), &st), EDGEGEN_ERR_CANCELLED);
  EXPECT_NE(std::string(edgegen_last_error()).find("cancelled by the callback after 57 of 100 steps"),
            std::string::npos)
      << edgegen_last_error();
  EXPECT_EQ(c.seen.size(), 57u);  // stopped at once: no further step
  EXPECT_EQ(st.network_calls, 99u);  // stats untouched on failure
  c.seen.clear();
  c.stop_at = 0;
  ASSERT_EQ(run(p, again), EDGEGEN_OK) << edgegen_last_error();
  EXPECT_EQ(again, ref);
  EXPECT_EQ(c.seen.size(), 100u);
}

struct Handshake {
  edgegen_bundle *bundle;
  std::atomic<uint64_t> done{0};
  std::atomic<bool> cancelled{false};
  uint64_t wait_at = 0;  // block the sampling thread at this step until the other thread cancelled
  uint64_t last = 0;
};

int wait_for_cancel(uint64_t done, uint64_t total, void *user) {
  auto *h = static_cast<Handshake *>(user);
  h->last = done;
  h->done.store(done);
  if (done == h->wait_at)
    while (!h->cancelled.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return 0;
}

TEST_F(ProgressTest, CancelFromAnotherThreadStopsWithinOneStep) {
  edgegen_sample_params p = params(2, 1);  // 2 batches x 50 = 100 steps
  Handshake h;
  h.bundle = b_;
  h.wait_at = 3;
  p.progress = wait_for_cancel;
  p.progress_user = &h;
  std::vector<float> out;
  edgegen_status s = EDGEGEN_OK;
  std::string msg;
  std::thread sampler([&] {
    s = run(p, out);
    msg = edgegen_last_error();  // thread-local
  });
  while (h.done.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(edgegen_cancel(b_), EDGEGEN_OK);
  h.cancelled.store(true);
  sampler.join();
  EXPECT_EQ(s, EDGEGEN_ERR_CANCELLED) << msg;
  EXPECT_EQ(msg, "cancelled by edgegen_cancel after 3 of 100 steps");
  EXPECT_EQ(h.last, 3u);
  // the next call is not cancelled
  std::vector<float> again;
  EXPECT_EQ(run(params(1, 1), again), EDGEGEN_OK) << edgegen_last_error();
}

int count_steps(uint64_t done, uint64_t, void *user) {
  static_cast<std::atomic<uint64_t> *>(user)->store(done);
  return 0;
}

TEST_F(ProgressTest, CancelFromAnotherThreadUnsynchronized) {
  edgegen_sample_params p = params(1, 1);
  p.sampler = "ddpm";  // 1000 steps: long enough to be cancelled midway
  std::atomic<uint64_t> done{0};
  p.progress = count_steps;
  p.progress_user = &done;
  std::vector<float> out;
  edgegen_status s = EDGEGEN_OK;
  std::thread sampler([&] { s = run(p, out); });
  while (done.load() < 5) std::this_thread::sleep_for(std::chrono::microseconds(200));
  EXPECT_EQ(edgegen_cancel(b_), EDGEGEN_OK);
  const uint64_t at_cancel = done.load();
  EXPECT_EQ(edgegen_cancel(b_), EDGEGEN_OK);  // twice: harmless
  sampler.join();
  EXPECT_EQ(s, EDGEGEN_ERR_CANCELLED);
  EXPECT_LE(done.load(), at_cancel + 1);  // within one step
  EXPECT_LT(done.load(), 1000u);
}

TEST_F(ProgressTest, CancelWhenIdleIsANoOp) {
  EXPECT_EQ(edgegen_cancel(b_), EDGEGEN_OK);
  EXPECT_EQ(edgegen_cancel(b_), EDGEGEN_OK);
  std::vector<float> out;
  Calls c;
  edgegen_sample_params p = params(1, 1);
  p.progress = record;
  p.progress_user = &c;
  EXPECT_EQ(run(p, out), EDGEGEN_OK) << edgegen_last_error();
  EXPECT_EQ(c.seen.size(), 50u);
}

TEST(ProgressBadInput, CancelBadHandles) {
  EXPECT_STATUS(edgegen_cancel(nullptr), EDGEGEN_ERR_INVALID_ARGUMENT);
  EXPECT_STATUS(edgegen_cancel(reinterpret_cast<edgegen_bundle *>(0x42)), EDGEGEN_ERR_INVALID_HANDLE);
  REQUIRE_TEST_BUNDLE();
  edgegen_bundle *b = load_test_bundle();
  ASSERT_EQ(edgegen_bundle_free(b), EDGEGEN_OK);
  EXPECT_STATUS(edgegen_cancel(b), EDGEGEN_ERR_INVALID_HANDLE);
}

}  // namespace
