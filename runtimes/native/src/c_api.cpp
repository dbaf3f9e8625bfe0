// The C API (include/edgegen.h): handle registry, parameter checks, errors -> status codes.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include "edgegen.h"
#include "error.hpp"
#include "interpreter.hpp"
#include "manifest.hpp"
#include "network.hpp"
#include "paths.hpp"
#include "plan.hpp"
#include "rng.hpp"
#include "stages.hpp"
#include "tokens.hpp"

#ifndef EDGEGEN_VERSION_STRING
#define EDGEGEN_VERSION_STRING "0.1.0"
#endif

using namespace edgegen;

namespace {

thread_local std::string g_last_error;

// One line: newlines and runs of spaces collapse (backend messages are often multi-line).
void set_error(const std::string &msg) {
  std::string out;
  bool space = false;
  for (char c : msg) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  if (out.size() > 1000) out = out.substr(0, 997) + "...";
  g_last_error = out;
}

edgegen_status error(edgegen_status s, const std::string &msg) {
  set_error(msg);
  return s;
}

// Runs f, turning every exception into a status + message: nothing escapes the C API.
template <typename F>
edgegen_status guarded(F &&f) {
  try {
    f();
    return EDGEGEN_OK;
  } catch (const Error &e) {
    return error(e.status(), e.what());
  } catch (const std::bad_alloc &) {
    return error(EDGEGEN_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception &e) {
    return error(EDGEGEN_ERR_RUNTIME, e.what());
  } catch (...) {
    return error(EDGEGEN_ERR_RUNTIME, "unknown error");
  }
}

struct Bundle {
  Manifest manifest;  // declared first: the stages, networks and runners refer to it
  LoadOptions options;
  bool tokens = false;  // the generator: the token loop (else a sampler plan)
  std::unique_ptr<ConditionStage> condition;
  std::unique_ptr<Network> network;      // the generator's role
  std::unique_ptr<RoleRunner> runner;    // plans
  std::unique_ptr<StepRunner> steps;     // token models
  std::unique_ptr<Network> decoder_net;  // the decoder stage's role, when the bundle has one
  std::unique_ptr<DecoderStage> decoder;
  std::vector<int64_t> plan_shape;  // the plan's sample shape: the generator's latent_shape, else data.shape
  std::mutex mu;  // serializes samples on this bundle (the compiled-model cache is shared)
  std::atomic<uint64_t> cancels{0};  // edgegen_cancel increments; a sample stops when it moved
};

// Handles are ids, never dereferenced: a freed id is gone from the map and never reused.
std::mutex g_registry_mu;
std::unordered_map<uintptr_t, std::shared_ptr<Bundle>> g_registry;
uintptr_t g_next_id = 0x1000;

std::shared_ptr<Bundle> lookup(edgegen_bundle *h) {
  if (!h) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "bundle is NULL");
  std::lock_guard<std::mutex> lock(g_registry_mu);
  auto it = g_registry.find(reinterpret_cast<uintptr_t>(h));
  if (it == g_registry.end()) fail(EDGEGEN_ERR_INVALID_HANDLE, "invalid bundle handle (freed, or never loaded)");
  return it->second;
}

void require(const void *p, const char *what) {
  if (!p) fail(EDGEGEN_ERR_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

void copy_str(char *dst, size_t cap, const std::string &s) {
  std::snprintf(dst, cap, "%s", s.c_str());
}

struct Resolved {
  Plan plan;
  std::vector<int64_t> labels;
  double guidance;
  uint32_t batch;
};

Plan resolve_plan(const Bundle &b, const edgegen_sample_params &p) {
  const Manifest &m = b.manifest;
  if (b.tokens) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model samples with the token loop: it has no sampler plan");
  if (p.plan_json) return parse_plan_text(p.plan_json, b.plan_shape);
  return parse_plan(select_stored_plan(m, p.sampler ? p.sampler : "", p.steps, p.eta), b.plan_shape);
}

// Values each sample has in edgegen_sample's output: the decoder's output, else the plan's.
size_t out_elems(const Bundle &b, const edgegen_sample_params &p) {
  if (b.decoder) return b.decoder->out_elems();
  if (b.tokens) return 0;
  const Plan plan = resolve_plan(b, p);
  return plan.elems[plan.output];
}

std::unique_ptr<Network> make_network(const Manifest &m, const std::string &role, const LoadOptions &o) {
  if (o.backend == "openvino") return make_openvino_network(m, role, o);
  if (o.backend == "tensorrt") {
#ifdef EDGEGEN_WITH_TENSORRT
    return make_tensorrt_network(m, role, o);
#else
    fail(EDGEGEN_ERR_UNSUPPORTED, "this edgegen library was built without TensorRT (EDGEGEN_WITH_TENSORRT=OFF)");
#endif
  }
  if (o.backend == "aoti") {
#ifdef EDGEGEN_WITH_AOTI
    return make_aoti_network(m, role, o);
#else
    fail(EDGEGEN_ERR_UNSUPPORTED, "this edgegen library was built without AOTInductor (EDGEGEN_WITH_AOTI=OFF)");
#endif
  }
  fail(EDGEGEN_ERR_UNSUPPORTED, "unknown backend '" + o.backend + "' (choose " + edgegen_backends() + ")");
}

// Token sampling settings: the caller's, else the bundle's defaults (TokenGenerator.token_sampling).
TokenSampling token_sampling(const Manifest &m, const edgegen_sample_params &p) {
  TokenSampling c;
  const json d = m.sampling.value("defaults", json::object());
  auto num = [&](const char *k, double dflt) { return d.contains(k) && d[k].is_number() ? d[k].get<double>() : dflt; };
  c.temperature = std::isnan(p.temperature) ? num("temperature", 1.0) : p.temperature;
  c.top_k = p.top_k == -1 ? int64_t(num("top_k", 0.0)) : p.top_k;
  if (p.top_k < -1) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "top-k must be a positive integer (0 turns it off, -1 = the bundle's default), got " +
                                                         std::to_string(p.top_k));
  c.top_p = std::isnan(p.top_p) ? num("top_p", 1.0) : p.top_p;
  check_token_sampling(c);
  return c;
}

void check_plan_only_fields(const Bundle &b, const edgegen_sample_params &p) {
  if (b.tokens) return;
  if (p.codes_out || p.codes_count) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "codes_out is for token models; this one samples a plan");
  if (p.prompt_tokens || p.prompt_len)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model takes no prompt tokens (it samples a plan" +
                                           std::string(b.manifest.num_classes ? "; give labels)" : ")"));
}

void check_n(uint32_t n) {
  if (n == 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "n must be a positive integer, got 0");
  if (n > EDGEGEN_MAX_SAMPLES)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "n = " + std::to_string(n) + " is too large (at most " +
                                           std::to_string(EDGEGEN_MAX_SAMPLES) + ")");
}

// n x sample size above a memory bound is a clear error, not an allocation failure (issue 20).
constexpr size_t MAX_OUTPUT_FLOATS = size_t(1) << 32;  // 16 GiB of float32
void check_output_size(uint32_t n, size_t elems) {
  if (elems != 0 && size_t(n) > MAX_OUTPUT_FLOATS / elems)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, std::to_string(n) + " samples of " + std::to_string(elems) +
                                           " values are more than the 16 GiB one call may return (ask for fewer)");
}

Resolved resolve(const Bundle &b, const edgegen_sample_params &p) {
  const Manifest &m = b.manifest;
  check_n(p.n);
  if (p.batch_size == 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "batch size must be positive, got 0");
  check_plan_only_fields(b, p);
  Resolved r{resolve_plan(b, p), {}, 1.0, std::min(p.batch_size, p.n)};
  check_output_size(p.n, r.plan.elems[r.plan.output]);
  r.labels = b.condition->labels(p.n, p.labels, p.label);
  if (std::isnan(p.guidance)) {
    const json d = m.sampling.value("defaults", json::object());
    r.guidance = d.contains("guidance") && d["guidance"].is_number() ? d["guidance"].get<double>() : 1.0;
  } else if (!std::isfinite(p.guidance)) {
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "guidance must be finite");
  } else {
    r.guidance = p.guidance;
  }
  return r;
}

}  // namespace

extern "C" {

void edgegen_load_params_init(edgegen_load_params *p) {
  if (!p) return;
  std::memset(p, 0, sizeof(*p));
  p->backend = "openvino";
  p->device = "CPU";
  p->precision = "fp32";
  p->verify_sha256 = 1;
  p->max_batch = 64;
}

void edgegen_sample_params_init(edgegen_sample_params *p) {
  if (!p) return;
  std::memset(p, 0, sizeof(*p));
  p->n = 1;
  p->label = -1;
  p->guidance = NAN;
  p->batch_size = 64;
  p->temperature = NAN;  // ABI 3: the bundle's token sampling defaults
  p->top_k = -1;
  p->top_p = NAN;
  p->prompt_count = 1;
}

const char *edgegen_status_name(edgegen_status s) {
  switch (s) {
    case EDGEGEN_OK: return "EDGEGEN_OK";
    case EDGEGEN_ERR_INVALID_ARGUMENT: return "EDGEGEN_ERR_INVALID_ARGUMENT";
    case EDGEGEN_ERR_NOT_FOUND: return "EDGEGEN_ERR_NOT_FOUND";
    case EDGEGEN_ERR_MALFORMED: return "EDGEGEN_ERR_MALFORMED";
    case EDGEGEN_ERR_INTEGRITY: return "EDGEGEN_ERR_INTEGRITY";
    case EDGEGEN_ERR_UNSUPPORTED: return "EDGEGEN_ERR_UNSUPPORTED";
    case EDGEGEN_ERR_INVALID_HANDLE: return "EDGEGEN_ERR_INVALID_HANDLE";
    case EDGEGEN_ERR_RUNTIME: return "EDGEGEN_ERR_RUNTIME";
    case EDGEGEN_ERR_OUT_OF_MEMORY: return "EDGEGEN_ERR_OUT_OF_MEMORY";
    case EDGEGEN_ERR_CANCELLED: return "EDGEGEN_ERR_CANCELLED";
  }
  return "EDGEGEN_ERR_UNKNOWN_STATUS";
}

const char *edgegen_last_error(void) { return g_last_error.c_str(); }
const char *edgegen_version(void) { return EDGEGEN_VERSION_STRING; }
int edgegen_abi_version(void) { return EDGEGEN_ABI_VERSION; }

size_t edgegen_struct_size(const char *name) {
  if (!name) return 0;
  const std::string n(name);
  if (n == "edgegen_load_params") return sizeof(edgegen_load_params);
  if (n == "edgegen_sample_params") return sizeof(edgegen_sample_params);
  if (n == "edgegen_stats") return sizeof(edgegen_stats);
  if (n == "edgegen_bundle_info") return sizeof(edgegen_bundle_info);
  if (n == "edgegen_stage_info") return sizeof(edgegen_stage_info);
  return 0;
}

const char *edgegen_backends(void) {
  static const std::string names = std::string("openvino")
#ifdef EDGEGEN_WITH_TENSORRT
                                   + ",tensorrt"
#endif
#ifdef EDGEGEN_WITH_AOTI
                                   + ",aoti"
#endif
      ;
  return names.c_str();
}

edgegen_status edgegen_bundle_load(const char *path, const edgegen_load_params *params, edgegen_bundle **out) {
  if (out) *out = nullptr;
  return guarded([&] {
    require(path, "path");
    require(out, "out");
    edgegen_load_params p;
    edgegen_load_params_init(&p);
    if (params) p = *params;
    auto b = std::make_shared<Bundle>();
    b->manifest = read_manifest(path, p.verify_sha256 != 0);
    LoadOptions &o = b->options;
    if (p.backend) o.backend = p.backend;
    if (p.device) o.device = p.device;
    if (p.precision) o.precision = p.precision;
    if (p.cache_dir) o.cache_dir = p.cache_dir;
    if (p.calibration_cache) o.calibration_cache = p.calibration_cache;
    if (p.max_batch <= 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "max_batch must be positive");
    o.max_batch = p.max_batch;
    if (p.num_threads < 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "num_threads must be >= 0 (0 = the runtime's default)");
    o.threads = p.num_threads;
    const Manifest &m = b->manifest;
    check_code_trust(m, m.sampling_role, o.backend, o.precision, p.trust_code != 0);  // SECURITY.md
    const std::string kind = m.sampling.value("kind", std::string());
    if (kind != "plan" && kind != "tokens")
      fail(EDGEGEN_ERR_UNSUPPORTED, "generator kind '" + kind + "' is not supported by the native runtime (plan, tokens)");
    b->tokens = kind == "tokens";
    b->condition = std::make_unique<ConditionStage>(m);
    if (b->tokens != (b->condition->prompt_length() > 0))
      fail(EDGEGEN_ERR_UNSUPPORTED, "condition '" + b->condition->kind() + "' cannot start a " + kind + " generator");
    b->network = make_network(m, m.sampling_role, o);
    if (b->tokens) {
      b->steps = std::make_unique<StepRunner>(m.role(m.sampling_role), *b->network, m.sampling.value("cache", json::object()));
    } else {
      b->runner = std::make_unique<RoleRunner>(m.role(m.sampling_role), *b->network);
      b->plan_shape = m.sampling.contains("latent_shape") ? m.sampling["latent_shape"].get<std::vector<int64_t>>()
                                                          : m.sample_shape;
    }
    if (!m.decoder.is_null()) {
      const std::string role = m.decoder.at("role").get<std::string>();
      check_code_trust(m, role, o.backend, o.precision, p.trust_code != 0);
      b->decoder_net = make_network(m, role, o);
      b->decoder = std::make_unique<DecoderStage>(m, *b->decoder_net);
      const int64_t per = b->tokens ? m.sampling.value("image_tokens", int64_t{0}) : 0;
      if (b->tokens && (!b->decoder->takes_codes() || int64_t(b->decoder->in_elems()) != per))
        fail(EDGEGEN_ERR_MALFORMED, "the decoder's input does not match the generator's " + std::to_string(per) + " codes");
    }
    if (b->tokens) {
      const int64_t n_tok = m.sampling.value("image_tokens", int64_t{0});
      if (n_tok <= 0 || n_tok > MAX_DIM) fail(EDGEGEN_ERR_MALFORMED, "the generator's image_tokens must be positive");
    }
    std::lock_guard<std::mutex> lock(g_registry_mu);
    const uintptr_t id = g_next_id;
    g_next_id += 16;
    g_registry.emplace(id, std::move(b));
    *out = reinterpret_cast<edgegen_bundle *>(id);
  });
}

edgegen_status edgegen_bundle_free(edgegen_bundle *h) {
  if (!h) return EDGEGEN_OK;
  return guarded([&] {
    std::shared_ptr<Bundle> b;  // released outside the registry lock
    std::lock_guard<std::mutex> lock(g_registry_mu);
    auto it = g_registry.find(reinterpret_cast<uintptr_t>(h));
    if (it == g_registry.end()) fail(EDGEGEN_ERR_INVALID_HANDLE, "invalid bundle handle (already freed, or never loaded)");
    b = std::move(it->second);
    g_registry.erase(it);
  });
}

edgegen_status edgegen_bundle_get_info(edgegen_bundle *h, edgegen_bundle_info *out) {
  return guarded([&] {
    auto b = lookup(h);
    require(out, "out");
    const Manifest &m = b->manifest;
    edgegen_bundle_info info;
    std::memset(&info, 0, sizeof(info));
    copy_str(info.family, sizeof(info.family), m.family);
    info.sample_rank = int(std::min<size_t>(m.sample_shape.size(), 8));
    for (int i = 0; i < info.sample_rank; ++i) info.sample_shape[i] = m.sample_shape[i];
    info.num_classes = m.num_classes;
    info.null_label = m.null_label.value_or(-1);
    info.data_range[0] = m.range[0];
    info.data_range[1] = m.range[1];
    copy_str(info.backend, sizeof(info.backend), b->options.backend);
    copy_str(info.device, sizeof(info.device), b->options.device);
    copy_str(info.precision, sizeof(info.precision), b->options.precision);
    *out = info;
  });
}

edgegen_status edgegen_bundle_stages(edgegen_bundle *h, edgegen_stage_info *out) {
  return guarded([&] {
    auto b = lookup(h);
    require(out, "out");
    const Manifest &m = b->manifest;
    edgegen_stage_info info;
    std::memset(&info, 0, sizeof(info));
    copy_str(info.condition, sizeof(info.condition), b->condition->kind());
    copy_str(info.generator, sizeof(info.generator), b->tokens ? "tokens" : "plan");
    info.has_decoder = b->decoder ? 1 : 0;
    info.pad_id = -1;
    if (b->tokens) {
      info.image_tokens = m.sampling.value("image_tokens", int64_t{0});
      const json grid = m.sampling.value("grid", json::array());
      if (grid.is_array() && grid.size() == 2) {
        info.grid[0] = grid[0].get<int64_t>();
        info.grid[1] = grid[1].get<int64_t>();
      }
      info.prompt_length = b->condition->prompt_length();
      info.text_vocab = b->condition->text_vocab();
      info.pad_id = b->condition->pad_id();
    }
    *out = info;
  });
}

edgegen_status edgegen_bundle_plan_keys(edgegen_bundle *h, char *buf, size_t buf_size, size_t *needed) {
  return guarded([&] {
    auto b = lookup(h);
    std::string keys;
    for (const auto &[key, _] : b->manifest.plans.items()) keys += (keys.empty() ? "" : ",") + key;
    if (needed) *needed = keys.size() + 1;
    if (buf && buf_size > 0) copy_str(buf, buf_size, keys);
  });
}

edgegen_status edgegen_sample_count(edgegen_bundle *h, const edgegen_sample_params *params, size_t *out_count) {
  return guarded([&] {
    auto b = lookup(h);
    require(params, "params");
    require(out_count, "out_count");
    check_n(params->n);
    const size_t e = out_elems(*b, *params);
    check_output_size(params->n, e);
    *out_count = size_t(params->n) * e;
  });
}

namespace {

// The token loop, then the decoder (out may be NULL when the caller asks only for codes_out).
void sample_tokens(Bundle &b, const edgegen_sample_params &p, Progress &progress, float *out, size_t out_count,
                   edgegen_stats &st) {
  const Manifest &m = b.manifest;
  check_n(p.n);
  if (p.batch_size == 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "batch size must be positive, got 0");
  if (p.plan_json || p.sampler || p.steps)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model samples with the token loop: it has no sampler plan (sampler, steps, "
                                       "plan_json do not apply)");
  TokenRequest req{};
  req.image_tokens = m.sampling.at("image_tokens").get<int64_t>();
  req.code_offset = m.sampling.value("code_offset", int64_t{0});
  req.sampling = token_sampling(m, p);
  const size_t codes_n = size_t(p.n) * size_t(req.image_tokens);
  if (p.codes_out && p.codes_count != codes_n)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "codes_count is " + std::to_string(p.codes_count) + " but " + std::to_string(p.n) +
                                           " samples have " + std::to_string(codes_n) + " codes");
  if (!p.codes_out && p.codes_count) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "codes_out is NULL but codes_count is not 0");
  const size_t want = b.decoder ? size_t(p.n) * b.decoder->out_elems() : 0;
  if (!out) {
    if (!p.codes_out) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "out is NULL (it may be only when codes_out is set)");
    if (out_count != 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "out is NULL but out_count is " + std::to_string(out_count));
  } else {
    if (!b.decoder) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this token model has no decoder: pass out = NULL and ask for codes_out");
    check_output_size(p.n, b.decoder->out_elems());
    if (out_count != want)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "out_count is " + std::to_string(out_count) + " but " + std::to_string(p.n) +
                                             " samples need " + std::to_string(want) + " floats (edgegen_sample_count)");
  }
  const std::vector<int64_t> prompt = b.condition->prompt(p.n, p);
  req.prompt = prompt.data();
  req.prompt_len = b.condition->prompt_length();
  if (req.prompt_len + req.image_tokens - 1 > b.steps->block_size())
    fail(EDGEGEN_ERR_MALFORMED, "the prompt and image tokens do not fit the model's block size");
  for (int64_t id : prompt)
    if (id < 0 || id >= b.steps->vocab_in())
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "input token " + std::to_string(id) + " is outside the model's vocabulary");
  req.n = p.n;
  req.seed = p.seed;
  req.batch_size = std::min(p.batch_size, p.n);
  req.progress = &progress;
  std::vector<int64_t> own;
  int64_t *codes = p.codes_out;
  if (!codes) {
    own.resize(codes_n);
    codes = own.data();
  }
  std::lock_guard<std::mutex> lock(b.mu);
  run_tokens(req, *b.steps, codes, st);
  if (out) {
    progress.check();
    b.decoder->decode_codes(codes, p.n, req.batch_size, out, st);
  }
}

}  // namespace

edgegen_status edgegen_sample(edgegen_bundle *h, const edgegen_sample_params *params, float *out, size_t out_count,
                              edgegen_stats *stats) {
  return guarded([&] {
    const auto t0 = std::chrono::steady_clock::now();
    auto b = lookup(h);
    Progress progress;  // samples waiting for the lock are cancelled too: read the counter first
    progress.cancel = &b->cancels;
    progress.cancel_seen = b->cancels.load(std::memory_order_acquire);
    require(params, "params");
    progress.fn = params->progress;
    progress.user = params->progress_user;
    edgegen_stats st{0.0, 0.0, 0};
    if (b->tokens) {
      sample_tokens(*b, *params, progress, out, out_count, st);
      st.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (stats) *stats = st;
      return;
    }
    require(out, "out");
    Resolved r = resolve(*b, *params);
    const size_t want = size_t(params->n) * (b->decoder ? b->decoder->out_elems() : r.plan.elems[r.plan.output]);
    if (out_count != want)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "out_count is " + std::to_string(out_count) + " but " + std::to_string(params->n) +
                                             " samples need " + std::to_string(want) + " floats (edgegen_sample_count)");
    const Manifest &m = b->manifest;
    std::optional<int64_t> null;
    if (m.num_classes > 0) null = m.null_label;
    RunRequest req{&r.plan, r.labels.data(), params->n, params->seed, r.batch, r.guidance, null, &progress};
    {
      std::lock_guard<std::mutex> lock(b->mu);
      if (!b->decoder) {
        run_plan(req, *b->runner, out, st);
      } else {  // the plan's output (latents) goes through the decoder
        if (r.plan.elems[r.plan.output] != b->decoder->in_elems() || b->decoder->takes_codes())
          fail(EDGEGEN_ERR_MALFORMED, "the plan's output does not match the decoder's input");
        std::vector<float> z(size_t(params->n) * r.plan.elems[r.plan.output]);
        run_plan(req, *b->runner, z.data(), st);
        progress.check();
        b->decoder->decode_latents(z.data(), params->n, r.batch, out, st);
      }
    }
    st.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (stats) *stats = st;
  });
}

edgegen_status edgegen_decode(edgegen_bundle *h, const int64_t *codes, size_t codes_count, uint32_t n,
                              uint32_t batch_size, float *out, size_t out_count) {
  return guarded([&] {
    auto b = lookup(h);
    require(codes, "codes");
    require(out, "out");
    check_n(n);
    if (!b->decoder) fail(EDGEGEN_ERR_UNSUPPORTED, "this bundle has no decoder stage");
    if (!b->decoder->takes_codes()) fail(EDGEGEN_ERR_UNSUPPORTED, "this bundle's decoder takes latents, not codes");
    const size_t per = b->decoder->in_elems();
    if (codes_count != size_t(n) * per)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "codes_count is " + std::to_string(codes_count) + " but " + std::to_string(n) +
                                             " samples have " + std::to_string(size_t(n) * per) + " codes");
    check_output_size(n, b->decoder->out_elems());
    if (out_count != size_t(n) * b->decoder->out_elems())
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "out_count is " + std::to_string(out_count) + " but " + std::to_string(n) +
                                             " decoded samples need " + std::to_string(size_t(n) * b->decoder->out_elems()) +
                                             " floats");
    const int64_t book = b->manifest.role(b->manifest.decoder.at("role").get<std::string>()).codebook_size;
    for (size_t i = 0; i < codes_count; ++i)
      if (codes[i] < 0 || (book > 0 && codes[i] >= book))
        fail(EDGEGEN_ERR_INVALID_ARGUMENT, "code " + std::to_string(codes[i]) + " is outside the codebook (0.." +
                                               std::to_string(book - 1) + ")");
    edgegen_stats st{0.0, 0.0, 0};
    std::lock_guard<std::mutex> lock(b->mu);
    b->decoder->decode_codes(codes, n, batch_size == 0 ? 64u : std::min(batch_size, n), out, st);
  });
}

edgegen_status edgegen_next_tokens(const float *logits, uint32_t batch, size_t vocab, const double *uniforms,
                                   double temperature, int64_t top_k, double top_p, int64_t *out) {
  return guarded([&] {
    require(logits, "logits");
    require(uniforms, "uniforms");
    require(out, "out");
    if (vocab == 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "vocab must be positive");
    if (batch > 0 && vocab > SIZE_MAX / batch) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "batch * vocab overflows");
    TokenSampling c{temperature, top_k, top_p};
    check_token_sampling(c);
    TokenScratch scratch;
    for (uint32_t i = 0; i < batch; ++i) {
      if (!(uniforms[i] > 0.0 && uniforms[i] < 1.0)) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "uniforms must be in (0, 1)");
      out[i] = next_token(logits + size_t(i) * vocab, vocab, uniforms[i], c, scratch);
    }
  });
}

edgegen_status edgegen_cancel(edgegen_bundle *h) {
  return guarded([&] { lookup(h)->cancels.fetch_add(1, std::memory_order_acq_rel); });
}

edgegen_status edgegen_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  return guarded([&] {
    require(counter, "counter");
    require(key, "key");
    require(out, "out");
    const rng::Block r = rng::philox4x32_10({counter[0], counter[1], counter[2], counter[3]}, key[0], key[1]);
    std::copy(r.begin(), r.end(), out);
  });
}

edgegen_status edgegen_gaussian(uint64_t seed, uint32_t first_sample, uint32_t batch, size_t elems, uint32_t draw,
                                uint32_t stream, float *out, size_t out_count) {
  return guarded([&] {
    require(out, "out");
    if (elems != 0 && batch > SIZE_MAX / elems) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "batch * elems overflows");
    if (out_count != size_t(batch) * elems)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "out_count must equal batch * elems");
    rng::gaussian(seed, first_sample, batch, elems, draw, stream, out);
  });
}

}  // extern "C"
