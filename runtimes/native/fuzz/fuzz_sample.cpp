// libFuzzer harness: fuzz input -> edgegen_sample_params -> edgegen_sample_count / edgegen_sample on
// the tiny test bundle, through the public C API only (edgegen.h). The bundle is loaded once
// (LLVMFuzzerInitialize) from $EDGEGEN_FUZZ_BUNDLE (the Makefile's build/testdata/ddpm-tiny).
//
// Checked on every input: each call returns a status in the enum, and a failing call leaves a
// non-empty one-line edgegen_last_error(); ASan/UBSan/libFuzzer catch crashes, overflows,
// leaks and hangs. Buffers passed in are always as large as the call is told (the harness never
// lies about sizes: that would be the caller's bug, not the library's).
//
// Cost bounds, so one execution stays in milliseconds: n <= 4 whenever a sample can actually run
// (larger n, up to UINT32_MAX, only with out = NULL, where the call must fail before sampling);
// steps from a small set, and a step count of 0 (the sampler's default: DDPM = all 1000) only
// with DDIM (50); a plan_json is the input's tail, so -max_len bounds its length.
//
// Decoding uses FuzzedDataProvider (shipped with clang's libFuzzer): control values come from the
// input's end, the plan JSON from its front (runtimes/native/fuzz/make_sample_seeds.py writes
// seeds in this layout).
#include <fuzzer/FuzzedDataProvider.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "edgegen.h"

namespace {

edgegen_bundle *g_bundle = nullptr;
size_t g_sample_elems = 0;                            // floats per sample (bundle info)
uint64_t g_count_status[EDGEGEN_ERR_CANCELLED + 1];   // edgegen_sample_count results, for EDGEGEN_FUZZ_STATS=1
uint64_t g_sample_status[EDGEGEN_ERR_CANCELLED + 1];  // edgegen_sample results

void print_stats() {
  const uint64_t *tables[] = {g_count_status, g_sample_status};
  const char *names[] = {"edgegen_sample_count", "edgegen_sample"};
  for (int t = 0; t < 2; ++t) {
    std::fprintf(stderr, "fuzz_sample: %s statuses:", names[t]);
    for (int i = 0; i <= EDGEGEN_ERR_CANCELLED; ++i)
      if (tables[t][i]) std::fprintf(stderr, " %s=%" PRIu64, edgegen_status_name(static_cast<edgegen_status>(i)), tables[t][i]);
    std::fprintf(stderr, "\n");
  }
}

[[noreturn]] void die(const char *what, edgegen_status s) {
  std::fprintf(stderr, "fuzz_sample: %s returned %d with edgegen_last_error() = \"%s\"\n", what, static_cast<int>(s),
               edgegen_last_error());
  std::abort();
}

// Every call must return a known status; a failure must say why in one line.
edgegen_status check(const char *what, edgegen_status s) {
  if (static_cast<int>(s) < EDGEGEN_OK || static_cast<int>(s) > EDGEGEN_ERR_CANCELLED) die(what, s);
  if (s != EDGEGEN_OK) {
    const char *e = edgegen_last_error();
    if (e == nullptr || e[0] == '\0' || std::strchr(e, '\n') != nullptr) die(what, s);
  }
  return s;
}

double pick_double(FuzzedDataProvider &in) {
  static const double table[] = {std::numeric_limits<double>::quiet_NaN(),
                                 0.0,
                                 -0.0,
                                 1.0,
                                 0.5,
                                 3.0,
                                 -1.0,
                                 std::numeric_limits<double>::infinity(),
                                 -std::numeric_limits<double>::infinity(),
                                 1e-300,
                                 1e300,
                                 std::numeric_limits<double>::max(),
                                 std::numeric_limits<double>::denorm_min()};
  const uint8_t i = in.ConsumeIntegral<uint8_t>();
  if (i < sizeof table / sizeof table[0]) return table[i];
  const uint64_t bits = in.ConsumeIntegral<uint64_t>();  // any bit pattern, NaN payloads included
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

int64_t pick_i64(FuzzedDataProvider &in) {
  static const int64_t table[] = {-1, 0, 1, 9, 10, 11, -2, 255, 256,
                                  std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
  const uint8_t i = in.ConsumeIntegral<uint8_t>();
  if (i < sizeof table / sizeof table[0]) return table[i];
  return in.ConsumeIntegral<int64_t>();
}

struct Progress {
  uint64_t stop_at;  // 0 = never stop
};

int progress_cb(uint64_t done, uint64_t total, void *user) {
  if (done == 0 || done > total) {
    std::fprintf(stderr, "fuzz_sample: progress %" PRIu64 " of %" PRIu64 "\n", done, total);
    std::abort();
  }
  const auto *p = static_cast<const Progress *>(user);
  return p->stop_at != 0 && done >= p->stop_at;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const char *path = std::getenv("EDGEGEN_FUZZ_BUNDLE");
  if (path == nullptr || path[0] == '\0') {
    std::fprintf(stderr, "fuzz_sample: set EDGEGEN_FUZZ_BUNDLE to a bundle folder (make native-testdata: "
                         "build/testdata/ddpm-tiny)\n");
    std::exit(2);
  }
  edgegen_load_params lp;
  edgegen_load_params_init(&lp);
  lp.num_threads = 1;  // the machine is shared; the tiny network gains nothing from threads
  if (edgegen_bundle_load(path, &lp, &g_bundle) != EDGEGEN_OK) {
    std::fprintf(stderr, "fuzz_sample: cannot load %s: %s\n", path, edgegen_last_error());
    std::exit(2);
  }
  edgegen_bundle_info info;
  if (edgegen_bundle_get_info(g_bundle, &info) != EDGEGEN_OK) {
    std::fprintf(stderr, "fuzz_sample: edgegen_bundle_get_info: %s\n", edgegen_last_error());
    std::exit(2);
  }
  g_sample_elems = 1;
  for (int i = 0; i < info.sample_rank; ++i) g_sample_elems *= static_cast<size_t>(info.sample_shape[i]);
  const char *stats = std::getenv("EDGEGEN_FUZZ_STATS");
  if (stats != nullptr && std::strcmp(stats, "1") == 0) std::atexit(print_stats);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint8_t flags = in.ConsumeIntegral<uint8_t>();
  const bool use_plan = flags & 1, use_labels = flags & 2, use_prompt = flags & 4, use_codes = flags & 8,
             use_progress = flags & 16, cancel_first = flags & 32;
  const int out_mode = (flags >> 6) & 3;  // 0 exact, 1 out = NULL, 2 one short, 3 one over

  static const uint32_t n_table[] = {0, 1, 2, 3, 4, EDGEGEN_MAX_SAMPLES, EDGEGEN_MAX_SAMPLES + 1u,
                                     std::numeric_limits<uint32_t>::max()};
  static const char *const samplers[] = {nullptr, "ddim", "ddpm", "", "euler", "DDIM", "ddim ", "ddim-50"};
  static const int steps_table[] = {1, 2, 3, 0, -1, 4, 5, 1000, 1001, std::numeric_limits<int>::max(),
                                    std::numeric_limits<int>::min()};
  static const uint32_t batch_table[] = {0, 1, 2, 3, 4, 64, std::numeric_limits<uint32_t>::max()};

  edgegen_sample_params sp;
  edgegen_sample_params_init(&sp);
  sp.n = n_table[in.ConsumeIntegralInRange<size_t>(0, sizeof n_table / sizeof n_table[0] - 1)];
  sp.sampler = samplers[in.ConsumeIntegralInRange<size_t>(0, sizeof samplers / sizeof samplers[0] - 1)];
  sp.steps = steps_table[in.ConsumeIntegralInRange<size_t>(0, sizeof steps_table / sizeof steps_table[0] - 1)];
  const bool ddim = sp.sampler == nullptr || std::strcmp(sp.sampler, "ddim") == 0;
  if (sp.steps == 0 && !ddim) sp.steps = 2;             // DDPM's default is all 1000 steps: too slow
  if (sp.steps == 1000 && sp.n > 1) sp.n = 1;           // one full-length run (about 1000 calls) at most
  sp.eta = pick_double(in);
  sp.seed = in.ConsumeIntegral<uint64_t>();
  sp.label = pick_i64(in);
  sp.guidance = pick_double(in);
  sp.batch_size = batch_table[in.ConsumeIntegralInRange<size_t>(0, sizeof batch_table / sizeof batch_table[0] - 1)];
  sp.temperature = pick_double(in);
  sp.top_k = pick_i64(in);
  sp.top_p = pick_double(in);

  const bool small = sp.n <= 4;
  std::vector<int64_t> labels;
  if (use_labels && small) {  // the API reads n labels: give exactly n
    for (uint32_t i = 0; i < sp.n; ++i) labels.push_back(pick_i64(in));
    sp.labels = labels.empty() ? nullptr : labels.data();
  }
  std::vector<int64_t> prompt;
  if (use_prompt && small) {
    sp.prompt_len = in.ConsumeIntegralInRange<size_t>(0, 4);
    sp.prompt_count = in.ConsumeIntegralInRange<uint32_t>(0, sp.n + 1);
    const size_t rows = sp.prompt_count == 0 ? 1 : sp.prompt_count;
    for (size_t i = 0; i < rows * sp.prompt_len; ++i) prompt.push_back(pick_i64(in));
    sp.prompt_tokens = prompt.empty() ? nullptr : prompt.data();
  }
  std::vector<int64_t> codes;
  if (use_codes) {
    codes.resize(in.ConsumeIntegralInRange<size_t>(0, 16));
    sp.codes_out = codes.empty() ? nullptr : codes.data();
    sp.codes_count = codes.size();
  }
  Progress prog{in.ConsumeIntegralInRange<uint64_t>(0, 8)};
  if (use_progress) {
    sp.progress = progress_cb;
    sp.progress_user = &prog;
  }
  {  // the stored plan keys, into a buffer of a fuzzed size (0 = NULL)
    char keys[64];
    const size_t cap = in.ConsumeIntegralInRange<size_t>(0, sizeof keys);
    size_t needed = 0;
    check("edgegen_bundle_plan_keys", edgegen_bundle_plan_keys(g_bundle, cap ? keys : nullptr, cap, &needed));
  }
  std::string plan;
  if (use_plan) {
    plan = in.ConsumeRemainingBytesAsString();  // embedded NULs end the C string early: also an input
    sp.plan_json = plan.c_str();
  }

  if (cancel_first) check("edgegen_cancel", edgegen_cancel(g_bundle));  // must not affect later calls

  size_t count = 0;
  const edgegen_status cs = check("edgegen_sample_count", edgegen_sample_count(g_bundle, &sp, &count));
  ++g_count_status[cs];
  if (cs == EDGEGEN_OK && count != sp.n * g_sample_elems) {
    std::fprintf(stderr, "fuzz_sample: edgegen_sample_count %zu for n = %u\n", count, sp.n);
    std::abort();
  }
  edgegen_stats st;
  std::memset(&st, 0, sizeof st);
  if (!small || out_mode == 1) {
    // out = NULL: must fail fast (no codes requested on a plan bundle) or run the token loop only.
    if (!small && use_codes) { sp.codes_out = nullptr; sp.codes_count = 0; }
    ++g_sample_status[check("edgegen_sample(out=NULL)", edgegen_sample(g_bundle, &sp, nullptr, 0, &st))];
    return 0;
  }
  // A real buffer, even when edgegen_sample_count refused: edgegen_sample must refuse the same way.
  count = sp.n * g_sample_elems;
  size_t len = count;
  if (out_mode == 2 && len > 0) len -= 1;
  if (out_mode == 3) len += 1;
  std::vector<float> out(len + 1);  // + 1: data() is never NULL, even for len 0
  const edgegen_status s = check("edgegen_sample", edgegen_sample(g_bundle, &sp, out.data(), len, &st));
  ++g_sample_status[s];
  if (s == EDGEGEN_OK && cs != EDGEGEN_OK) {
    std::fprintf(stderr, "fuzz_sample: edgegen_sample succeeded where edgegen_sample_count said %s\n",
                 edgegen_status_name(cs));
    std::abort();
  }
  if (s == EDGEGEN_OK) {
    if (len != count) {
      std::fprintf(stderr, "fuzz_sample: edgegen_sample accepted out_count %zu, sample_count said %zu\n", len, count);
      std::abort();
    }
    if (!(st.total_seconds >= 0) || !(st.network_seconds >= 0)) {
      std::fprintf(stderr, "fuzz_sample: stats %g %g\n", st.total_seconds, st.network_seconds);
      std::abort();
    }
  }
  return 0;
}
