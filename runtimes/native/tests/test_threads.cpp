// The concurrency contract (edgegen.h "Thread safety"), for plans (the tiny DDPM) and the token
// loop (the tiny DALL-E): N threads on their own handles give exactly the single-threaded
// samples; threads sharing one handle are serialized and exact too; cancelling from another
// thread stops a token run; freeing a handle while another thread samples is safe.
// `make native-tsan` runs these under ThreadSanitizer.
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"

using namespace testing_edgegen;

namespace {

constexpr int THREADS = 3;
const int64_t PROMPT[] = {5, 9, 14, 3};

struct Case {
  std::string path;
  bool tokens;
};

edgegen_bundle *load(const std::string &path) {
  edgegen_bundle *b = nullptr;
  EXPECT_EQ(edgegen_bundle_load(path.c_str(), nullptr, &b), EDGEGEN_OK) << edgegen_last_error();
  return b;
}

edgegen_sample_params params(bool tokens, uint64_t seed) {
  edgegen_sample_params p;
  edgegen_sample_params_init(&p);
  p.n = 2;  // one batch: 50 plan steps or 16 tokens per call
  p.seed = seed;
  p.batch_size = 2;
  if (tokens) {
    p.prompt_tokens = PROMPT;
    p.prompt_len = 4;
  } else {
    p.sampler = "ddim";
    p.steps = 50;
  }
  return p;
}

// The decoded images (tokens) or the plan's samples of one call; empty on failure.
std::vector<float> sample(edgegen_bundle *b, const edgegen_sample_params &p, edgegen_status *status = nullptr) {
  size_t count = 0;
  edgegen_status s = edgegen_sample_count(b, &p, &count);
  std::vector<float> out(count);
  if (s == EDGEGEN_OK) s = edgegen_sample(b, &p, out.data(), out.size(), nullptr);
  if (status) *status = s;
  if (s != EDGEGEN_OK) out.clear();
  return out;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  if (have_test_bundle()) out.push_back({test_bundle(), false});
  if (have_token_bundle()) out.push_back({token_bundle(), true});
  return out;
}

TEST(Threads, OwnHandlesGiveTheSingleThreadedSamples) {
  if (cases().empty()) GTEST_SKIP() << "no test bundles (make native-testdata)";
  for (const Case &c : cases()) {
    std::vector<std::vector<float>> ref(THREADS), got(THREADS);
    edgegen_bundle *one = load(c.path);
    for (int i = 0; i < THREADS; ++i) ref[i] = sample(one, params(c.tokens, 100 + i));
    edgegen_bundle_free(one);
    std::vector<std::thread> ts;
    for (int i = 0; i < THREADS; ++i)
      ts.emplace_back([&, i] {
        edgegen_bundle *b = load(c.path);
        got[i] = sample(b, params(c.tokens, 100 + i));
        edgegen_bundle_free(b);
      });
    for (auto &t : ts) t.join();
    for (int i = 0; i < THREADS; ++i) {
      ASSERT_FALSE(ref[i].empty());
      EXPECT_EQ(got[i], ref[i]) << c.path << " thread " << i;
    }
  }
}

TEST(Threads, SharedHandleIsSerializedAndExact) {
  if (cases().empty()) GTEST_SKIP() << "no test bundles (make native-testdata)";
  for (const Case &c : cases()) {
    edgegen_bundle *b = load(c.path);
    std::vector<std::vector<float>> ref(THREADS), got(THREADS);
    for (int i = 0; i < THREADS; ++i) ref[i] = sample(b, params(c.tokens, 200 + i));
    std::vector<std::thread> ts;
    for (int i = 0; i < THREADS; ++i) ts.emplace_back([&, i] { got[i] = sample(b, params(c.tokens, 200 + i)); });
    for (auto &t : ts) t.join();
    for (int i = 0; i < THREADS; ++i) EXPECT_EQ(got[i], ref[i]) << c.path << " thread " << i;
    edgegen_bundle_free(b);
  }
}

// The sampling thread waits inside its callback at step 3 until the main thread has acted.
struct Gate {
  std::atomic<bool> reached{false}, release{false};
};

int wait_at_3(uint64_t done, uint64_t, void *u) {
  auto *g = static_cast<Gate *>(u);
  if (done == 3) {
    g->reached = true;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!g->release && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return 0;
}

void wait_for(const std::atomic<bool> &flag) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!flag && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

TEST(Threads, CancelATokenRunFromAnotherThread) {
  REQUIRE_TOKEN_BUNDLE();
  edgegen_bundle *b = load(token_bundle());
  Gate g;
  edgegen_sample_params p = params(true, 1);
  p.progress = wait_at_3;
  p.progress_user = &g;
  edgegen_status status = EDGEGEN_OK;
  std::string message;
  std::thread t([&] {
    sample(b, p, &status);
    message = edgegen_last_error();  // thread-local: read on the sampling thread
  });
  wait_for(g.reached);
  EXPECT_EQ(edgegen_cancel(b), EDGEGEN_OK);
  EXPECT_EQ(edgegen_cancel(b), EDGEGEN_OK);  // twice: still one cancellation
  g.release = true;
  t.join();
  EXPECT_EQ(status, EDGEGEN_ERR_CANCELLED);
  EXPECT_NE(message.find("cancelled by edgegen_cancel after 3 of"), std::string::npos) << message;
  edgegen_status again = EDGEGEN_ERR_RUNTIME;
  EXPECT_FALSE(sample(b, params(true, 1), &again).empty());  // later calls run normally
  EXPECT_EQ(again, EDGEGEN_OK);
  edgegen_bundle_free(b);
}

TEST(Threads, FreeWhileAnotherThreadSamples) {
  if (cases().empty()) GTEST_SKIP() << "no test bundles (make native-testdata)";
  for (const Case &c : cases()) {
    edgegen_bundle *b = load(c.path);
    const std::vector<float> ref = sample(b, params(c.tokens, 5));
    Gate g;
    edgegen_sample_params p = params(c.tokens, 5);
    p.progress = wait_at_3;
    p.progress_user = &g;
    edgegen_status status = EDGEGEN_ERR_RUNTIME;
    std::vector<float> got;
    std::thread t([&] { got = sample(b, p, &status); });
    wait_for(g.reached);
    EXPECT_EQ(edgegen_bundle_free(b), EDGEGEN_OK);  // the running sample keeps the bundle alive
    g.release = true;
    t.join();
    EXPECT_EQ(status, EDGEGEN_OK) << c.path;
    EXPECT_EQ(got, ref) << c.path;
    edgegen_status after = EDGEGEN_OK;
    sample(b, params(c.tokens, 5), &after);
    EXPECT_EQ(after, EDGEGEN_ERR_INVALID_HANDLE);
  }
}

}  // namespace
