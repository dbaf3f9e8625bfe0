// The C API (include/edgegen.h): handle registry, parameter checks, errors -> status codes.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <algorithm>
#include <memory>
#include <numeric>
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
  std::unique_ptr<Network> text_net;      // the prompt stage's text encoder (latent text-to-image)
  std::unique_ptr<EncoderStage> text_encoder;
  std::unique_ptr<Network> image_net;     // the image encoder stage (latent models: image-to-image)
  std::unique_ptr<EncoderStage> image_encoder;
  bool takes_image = false;         // image-to-image and inpainting apply (DDPM-process plan models)
  std::string text_device, denoiser_device, decoder_device;  // each stage's device (ABI 5; "" = no such stage)
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

// The stored edit an image request asks for (image-to-image: strength, default 0.6; inpainting:
// the mask, with strength NaN the plan's full length). Values are checked in check_image.
PlanEdit plan_edit(const edgegen_sample_params &p) {
  PlanEdit e;
  if (!p.init_image) return e;
  e.any = true;
  e.inpaint = p.mask != nullptr;
  e.has_strength = !std::isnan(p.strength) || !e.inpaint;
  e.strength = std::isnan(p.strength) ? 0.6 : p.strength;
  return e;
}

Plan resolve_plan(const Bundle &b, const edgegen_sample_params &p) {
  const Manifest &m = b.manifest;
  if (b.tokens) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model samples with the token loop: it has no sampler plan");
  if (p.plan_json) return parse_plan_text(p.plan_json, b.plan_shape);
  return parse_plan(select_stored_plan(m, p.sampler ? p.sampler : "", p.steps, p.eta, plan_edit(p)), b.plan_shape);
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
  if (o.backend == "executorch") {
#ifdef EDGEGEN_WITH_EXECUTORCH
    return make_executorch_network(m, role, o);
#else
    fail(EDGEGEN_ERR_UNSUPPORTED, "this edgegen library was built without ExecuTorch (EDGEGEN_WITH_EXECUTORCH=OFF)");
#endif
  }
  fail(EDGEGEN_ERR_UNSUPPORTED, "unknown backend '" + o.backend + "' (choose " + edgegen_backends() + ")");
}

// A stage's network on the stage's own device (ABI 5: edgegen_load_params.*_device, NULL = device);
// an unsupported device (or precision, format) names the stage.
std::unique_ptr<Network> make_stage_network(const Manifest &m, const std::string &role, LoadOptions o, const char *stage,
                                            const std::string &device) {
  o.device = device;
  try {
    return make_network(m, role, o);
  } catch (const Error &e) {
    if (e.status() != EDGEGEN_ERR_UNSUPPORTED) throw;
    fail(EDGEGEN_ERR_UNSUPPORTED, std::string("the ") + stage + " stage on device '" + device + "': " + e.what());
  }
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
  if ((p.prompt_tokens || p.prompt_len || p.prompts) && !b.text_encoder)
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
  if (!b.text_encoder) r.labels = b.condition->labels(p.n, p.labels, p.label);  // context models: prompt rows
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
  p->image_count = 1;  // ABI 4
  p->strength = NAN;
  p->preview_every = 1;  // ABI 5
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
#ifdef EDGEGEN_WITH_EXECUTORCH
                                   + ",executorch"
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
    auto stage_device = [&](const char *d) { return std::string(d ? d : o.device.c_str()); };
    const std::string text_device = stage_device(p.text_encoder_device), gen_device = stage_device(p.denoiser_device),
                      dec_device = stage_device(p.decoder_device);
    const Manifest &m = b->manifest;
    check_code_trust(m, m.sampling_role, o.backend, o.precision, p.trust_code != 0);  // SECURITY.md
    const std::string kind = m.sampling.value("kind", std::string());
    if (kind != "plan" && kind != "tokens")
      fail(EDGEGEN_ERR_UNSUPPORTED, "generator kind '" + kind + "' is not supported by the native runtime (plan, tokens)");
    b->tokens = kind == "tokens";
    b->condition = std::make_unique<ConditionStage>(m);
    const bool prompt_ids = b->condition->prompt_length() > 0 && !b->condition->has_encoder();  // the token loop's
    if (b->tokens != prompt_ids)
      fail(EDGEGEN_ERR_UNSUPPORTED, "condition '" + b->condition->kind() + "' cannot start a " + kind + " generator");
    b->network = make_stage_network(m, m.sampling_role, o, "denoiser", gen_device);
    b->denoiser_device = gen_device;
    if (b->tokens) {
      b->steps = std::make_unique<StepRunner>(m.role(m.sampling_role), *b->network, m.sampling.value("cache", json::object()));
      b->steps->use_static_kv(m, [&](const std::string &r) { return make_stage_network(m, r, o, "denoiser", gen_device); });  // static_kv bundles
    } else {
      b->runner = std::make_unique<RoleRunner>(m.role(m.sampling_role), *b->network);
      b->plan_shape = m.sampling.contains("latent_shape") ? m.sampling["latent_shape"].get<std::vector<int64_t>>()
                                                          : m.sample_shape;
    }
    if (!m.decoder.is_null()) {
      const std::string role = m.decoder.at("role").get<std::string>();
      check_code_trust(m, role, o.backend, o.precision, p.trust_code != 0);
      b->decoder_net = make_stage_network(m, role, o, "decoder", dec_device);
      b->decoder_device = dec_device;
      b->decoder = std::make_unique<DecoderStage>(m, *b->decoder_net);
      const int64_t per = b->tokens ? m.sampling.value("image_tokens", int64_t{0}) : 0;
      if (b->tokens && (!b->decoder->takes_codes() || int64_t(b->decoder->in_elems()) != per))
        fail(EDGEGEN_ERR_MALFORMED, "the decoder's input does not match the generator's " + std::to_string(per) + " codes");
    }
    if (b->condition->has_encoder()) {  // latent text-to-image: prompt ids -> text encoder -> context
      const std::string role = b->condition->encoder().at("role").get<std::string>();
      if (b->tokens) fail(EDGEGEN_ERR_UNSUPPORTED, "a token model with a text encoder is not supported natively");
      check_code_trust(m, role, o.backend, o.precision, p.trust_code != 0);
      b->text_net = make_stage_network(m, role, o, "text encoder", text_device);
      b->text_device = text_device;
      b->text_encoder = std::make_unique<EncoderStage>(m, b->condition->encoder(), *b->text_net);
      if (!b->text_encoder->takes_ids() || int64_t(b->text_encoder->in_elems()) != b->condition->prompt_length())
        fail(EDGEGEN_ERR_MALFORMED, "the text encoder does not take " + std::to_string(b->condition->prompt_length()) +
                                        " token ids (the tokenizer's text length)");
      if (!b->runner->has_context() || b->runner->context_elems() != b->text_encoder->out_elems())
        fail(EDGEGEN_ERR_MALFORMED, "the generator role has no context input of the text encoder's output size");
    } else if (b->runner && b->runner->has_context()) {
      fail(EDGEGEN_ERR_MALFORMED, "the generator role takes a context but the condition stage has no text encoder");
    }
    if (!b->tokens) {
      const size_t plan_elems = size_t(std::accumulate(b->plan_shape.begin(), b->plan_shape.end(), int64_t{1},
                                                       std::multiplies<int64_t>()));
      const bool latent = b->plan_shape != m.sample_shape;
      if (latent && !m.encoder.is_null()) {  // image-to-image on a latent model: images -> latents * scale
        const std::string role = m.encoder.at("role").get<std::string>();
        check_code_trust(m, role, o.backend, o.precision, p.trust_code != 0);
        b->image_net = make_stage_network(m, role, o, "image encoder", dec_device);
        b->decoder_device = dec_device;
        b->image_encoder = std::make_unique<EncoderStage>(m, m.encoder, *b->image_net);
        const size_t sample_elems = size_t(std::accumulate(m.sample_shape.begin(), m.sample_shape.end(), int64_t{1},
                                                           std::multiplies<int64_t>()));
        if (b->image_encoder->takes_ids() || b->image_encoder->in_elems() != sample_elems ||
            b->image_encoder->out_elems() != plan_elems)
          fail(EDGEGEN_ERR_MALFORMED, "the image encoder does not map a sample to the plan's latents");
      }
      b->takes_image = m.sampling.value("process", std::string()) == "ddpm" && m.sampling.contains("schedule") &&
                       m.sample_shape.size() == 3 && (!latent || b->image_encoder);
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
    info.has_text_encoder = b->text_encoder ? 1 : 0;
    info.takes_image = b->takes_image ? 1 : 0;
    info.has_image_encoder = b->image_encoder ? 1 : 0;
    copy_str(info.text_encoder_device, sizeof(info.text_encoder_device), b->text_device);
    copy_str(info.denoiser_device, sizeof(info.denoiser_device), b->denoiser_device);
    copy_str(info.decoder_device, sizeof(info.decoder_device), b->decoder_device);
    info.has_tokenizer = b->condition->has_tokenizer() ? 1 : 0;  // ABI 5
    if (b->text_encoder) {
      info.prompt_length = b->condition->prompt_length();
      info.text_vocab = b->condition->text_vocab();
      info.pad_id = b->condition->pad_id();
    }
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
  if (p.init_image || p.mask || !std::isnan(p.strength))
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "image-to-image and inpainting need a diffusion model (this one samples tokens)");
  if (p.preview) fail(EDGEGEN_ERR_UNSUPPORTED, "no preview for token models (a preview shows a diffusion plan's x0 prediction)");
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

size_t prod(const std::vector<int64_t> &shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

// The caller's image inputs, checked against the model (pipeline.py _edit_inputs has the same rules
// and words): none when init_image is NULL.
struct ImageInputs {
  const float *image = nullptr;
  uint32_t count = 0;  // 1 or n
  const float *mask = nullptr;
};

ImageInputs check_image(const Bundle &b, const edgegen_sample_params &p) {
  ImageInputs in;
  if (!p.init_image) {
    if (p.mask || !std::isnan(p.strength)) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "mask and strength need an init image");
    return in;
  }
  const Manifest &m = b.manifest;
  if (!b.takes_image) {
    const std::string process = m.sampling.value("process", std::string());
    if (process != "ddpm" || !m.sampling.contains("schedule"))
      fail(EDGEGEN_ERR_UNSUPPORTED, "image-to-image and inpainting need a DDPM-process model (this one is '" + process + "')");
    if (m.sample_shape.size() != 3) fail(EDGEGEN_ERR_UNSUPPORTED, "image inputs need a model of C x H x W images");
    fail(EDGEGEN_ERR_UNSUPPORTED, "this latent model has no image encoder stage: it cannot start from an image");
  }
  const std::vector<int64_t> &sh = m.sample_shape;
  if (int64_t(p.image_channels) != sh[0] || int64_t(p.image_height) != sh[1] || int64_t(p.image_width) != sh[2])
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the init image is " + dims({p.image_channels, p.image_height, p.image_width}) +
                                           ", this model takes " + dims({sh[0], sh[1], sh[2]}) +
                                           " (channels x height x width)");
  in.count = p.image_count == 0 ? 1 : p.image_count;
  if (in.count != 1 && in.count != p.n)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "image_count must be 1 (one image for every sample) or n = " + std::to_string(p.n) +
                                           ", got " + std::to_string(in.count));
  const size_t elems = prod(sh);
  const float lo = float(m.range[0]), hi = float(m.range[1]);
  for (size_t i = 0; i < size_t(in.count) * elems; ++i) {
    const float v = p.init_image[i];
    if (!std::isfinite(v) || v < lo || v > hi)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the init image has values outside the data range [" + format_g(m.range[0]) + ", " +
                                             format_g(m.range[1]) + "]");
  }
  if (!std::isnan(p.strength) && !(p.strength > 0.0 && p.strength <= 1.0))
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "strength must be in (0, 1], got " + format_g(p.strength));
  if (p.mask) {
    if (int64_t(p.mask_height) != sh[1] || int64_t(p.mask_width) != sh[2])
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the mask is " + dims({p.mask_height, p.mask_width}) + ", it must be " +
                                             dims({sh[1], sh[2]}) + " like the image");
    for (size_t i = 0; i < size_t(sh[1] * sh[2]); ++i)
      if (p.mask[i] != 0.0f && p.mask[i] != 1.0f)
        fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the mask must be binary: 1 (white) where to generate, 0 (black) where to keep");
    in.mask = p.mask;
  } else if (p.mask_height || p.mask_width) {
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "mask is NULL but mask_height x mask_width is " + dims({p.mask_height, p.mask_width}));
  }
  in.image = p.init_image;
  return in;
}

// Which plan input register an image request fills: x_init (the image or its latents) and mask.
void check_plan_inputs(const Plan &plan, const ImageInputs &img, const edgegen_sample_params &p) {
  std::vector<std::string> names;
  for (int r : plan.inputs) names.push_back(plan.registers[r]);
  auto has = [&](const char *n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (const std::string &n : names)
    if (n != "x_init" && n != "mask")
      fail(EDGEGEN_ERR_UNSUPPORTED, "plan input register '" + n + "' is not one the native runtime fills (x_init, mask)");
  if (!img.image) {
    if (!names.empty())
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this plan starts from an image (input register '" + names[0] + "'): give init_image");
    return;
  }
  if (p.plan_json && !std::isnan(p.strength))
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "strength is part of the plan: give plan_json or strength, not both");
  if (!has("x_init")) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this plan does not start from an image (no input register 'x_init')");
  if (has("mask") != (img.mask != nullptr))
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, img.mask ? "this plan does not inpaint (no input register 'mask'): ask for an inpainting plan"
                                                : "this plan inpaints (input register 'mask'): give a mask");
}

// The context table [context of each distinct prompt; null context] and each sample's row
// (stages.py PromptCondition.prepare: the text encoder runs once per distinct prompt, in batches of
// 64, on the prompts and then the empty prompt, all padding).
void encode_prompts(Bundle &b, const edgegen_sample_params &p, std::vector<float> &table, std::vector<int64_t> &labels,
                    edgegen_stats &st) {
  const std::vector<int64_t> ids = b.condition->prompt(p.n, p);
  const size_t len = size_t(b.condition->prompt_length());
  std::vector<int64_t> rows;  // distinct prompts in order of first use, then the null prompt
  labels.assign(p.n, 0);
  std::map<std::vector<int64_t>, int64_t> index;
  for (uint32_t i = 0; i < p.n; ++i) {
    std::vector<int64_t> row(ids.begin() + size_t(i) * len, ids.begin() + size_t(i + 1) * len);
    auto it = index.find(row);
    if (it == index.end()) {
      it = index.emplace(row, int64_t(index.size())).first;
      rows.insert(rows.end(), row.begin(), row.end());
    }
    labels[i] = it->second;
  }
  rows.resize(rows.size() + len, b.condition->pad_id());
  const size_t k = rows.size() / len;
  table.resize(k * b.text_encoder->out_elems());
  b.text_encoder->encode_ids(rows.data(), k, 64, table.data(), st);
}

// The plan's input registers for n samples: x_init (the image, or its latents times the encoder's
// scale) and mask (max-pooled to the latent grid: a latent cell is generated when any of its pixels
// is), both broadcast to every sample and channel.
void fill_image_inputs(Bundle &b, const Plan &plan, const ImageInputs &img, uint32_t n, uint32_t batch,
                       std::vector<std::vector<float>> &bufs, std::vector<const float *> &ptrs, edgegen_stats &st) {
  const Manifest &m = b.manifest;
  const size_t pe = prod(b.plan_shape);
  std::vector<float> x0;  // img.count samples in plan space
  if (b.image_encoder) {
    x0.resize(size_t(img.count) * pe);
    b.image_encoder->encode_floats(img.image, img.count, batch, x0.data(), st);
  } else {
    x0.assign(img.image, img.image + size_t(img.count) * pe);
  }
  std::vector<float> cell;  // the mask on the plan's grid (H x W of plan_shape)
  if (img.mask) {
    const int64_t H = m.sample_shape[1], W = m.sample_shape[2], lh = b.plan_shape[1], lw = b.plan_shape[2];
    if (H % lh != 0 || W % lw != 0) fail(EDGEGEN_ERR_MALFORMED, "the image size is not a multiple of the latent grid");
    const int64_t fy = H / lh, fx = W / lw;
    cell.assign(size_t(lh * lw), 0.0f);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        float &c = cell[size_t((y / fy) * lw + x / fx)];
        c = std::max(c, img.mask[y * W + x]);
      }
  }
  for (int r : plan.inputs) {
    if (plan.elems[r] != pe) fail(EDGEGEN_ERR_MALFORMED, "plan input register '" + plan.registers[r] + "' is not of the plan's shape");
    std::vector<float> buf(size_t(n) * pe);
    if (plan.registers[r] == "x_init") {
      for (uint32_t i = 0; i < n; ++i)
        std::copy_n(x0.data() + (img.count == 1 ? 0 : size_t(i) * pe), pe, buf.data() + size_t(i) * pe);
    } else {  // mask
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = cell[i % cell.size()];
    }
    bufs.push_back(std::move(buf));
    ptrs.push_back(bufs.back().data());
  }
}

// Latent inpainting: the decoded samples get the input's unmasked pixels back (pipeline.py: keep *
// out + (1 - keep) * image, float32), so they equal the input exactly there.
void paste_unmasked(const Bundle &b, const ImageInputs &img, uint32_t n, float *out) {
  const std::vector<int64_t> &sh = b.manifest.sample_shape;
  const size_t e = prod(sh), hw = size_t(sh[1] * sh[2]);
  for (uint32_t i = 0; i < n; ++i) {
    float *o = out + size_t(i) * e;
    const float *im = img.image + (img.count == 1 ? 0 : size_t(i) * e);
    for (size_t j = 0; j < e; ++j) {
      const float keep = img.mask[j % hw];
      const float a = keep * o[j], c = (1.0f - keep) * im[j];
      o[j] = a + c;
    }
  }
}

// The preview hook (ABI 5): the batch's x0 prediction (the plan's "preview" register), decoded by the
// decoder stage when the bundle has one (x0 / scale, like the final decode), to the caller's callback.
void set_preview(Bundle &b, const edgegen_sample_params &p, const Plan &plan, RunRequest &req, std::vector<float> &shown,
                 edgegen_stats &st) {
  const std::vector<int64_t> &dims = b.decoder ? b.manifest.sample_shape : plan.shapes[plan.preview];
  // c x h x w: rank 3 as is; rank 2 (h, w) with c = 1; rank 1 (d) as d x 1 x 1; leading dims fold into c
  uint32_t chw[3] = {1, 1, 1};
  const size_t r = dims.size();
  if (r == 1) chw[0] = uint32_t(dims[0]);
  if (r >= 2) {
    chw[1] = uint32_t(dims[r - 2]);
    chw[2] = uint32_t(dims[r - 1]);
    for (size_t i = 0; i + 2 < r; ++i) chw[0] *= uint32_t(dims[i]);
  }
  req.preview_every = p.preview_every == 0 ? 1 : p.preview_every;
  req.preview = [&b, &p, &shown, &st, chw](uint64_t done, uint64_t total, const float *x0, uint32_t n) {
    const float *image = x0;
    if (b.decoder) {
      if (b.decoder->takes_codes()) fail(EDGEGEN_ERR_MALFORMED, "the plan's output does not match the decoder's input");
      shown.resize(size_t(n) * b.decoder->out_elems());
      b.decoder->decode_latents(x0, n, n, shown.data(), st);
      image = shown.data();
    }
    if (p.preview(done, total, image, n, chw[0], chw[1], chw[2], p.preview_user) != 0)
      fail(EDGEGEN_ERR_CANCELLED, "cancelled by the preview callback after " + std::to_string(done) + " of " +
                                      std::to_string(total) + " steps");
  };
}

// Sets the runner's context table for one call and clears it after (the table lives on the stack).
struct ContextScope {
  RoleRunner &runner;
  ContextScope(RoleRunner &r, const std::vector<float> &table, size_t rows) : runner(r) { r.set_context(table.data(), rows); }
  ~ContextScope() { runner.set_context(nullptr, 0); }
};

// The plan pipeline: (text encoder) -> (image encoder) -> plan -> (decoder) -> (paste back).
void sample_plan(Bundle &b, const edgegen_sample_params &p, Progress &progress, float *out, size_t out_count,
                 edgegen_stats &st) {
  require(out, "out");
  const ImageInputs img = check_image(b, p);
  Resolved r = resolve(b, p);
  check_plan_inputs(r.plan, img, p);
  if (p.preview && r.plan.preview < 0)
    fail(EDGEGEN_ERR_UNSUPPORTED, "this " + r.plan.sampler + " plan names no x0 prediction register: it has no preview "
                                  "(DDIM and DDPM plans have one; re-export a bundle stored before previews)");
  const size_t want = size_t(p.n) * (b.decoder ? b.decoder->out_elems() : r.plan.elems[r.plan.output]);
  if (out_count != want)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "out_count is " + std::to_string(out_count) + " but " + std::to_string(p.n) +
                                           " samples need " + std::to_string(want) + " floats (edgegen_sample_count)");
  const Manifest &m = b.manifest;
  std::optional<int64_t> null;
  if (b.text_encoder) null = -1;  // the null context
  else if (m.num_classes > 0) null = m.null_label;
  std::vector<float> table;
  if (b.text_encoder) (void)b.condition->prompt(p.n, p);  // bad prompts fail here, before the lock
  std::lock_guard<std::mutex> lock(b.mu);
  if (b.text_encoder) encode_prompts(b, p, table, r.labels, st);
  RunRequest req{&r.plan, r.labels.data(), p.n, p.seed, r.batch, r.guidance, null, &progress, {}, {}, 1};
  std::vector<std::vector<float>> bufs;
  bufs.reserve(r.plan.inputs.size());
  if (img.image) fill_image_inputs(b, r.plan, img, p.n, r.batch, bufs, req.inputs, st);
  std::vector<float> shown;  // the decoded preview of one batch
  if (p.preview) set_preview(b, p, r.plan, req, shown, st);
  progress.check();
  ContextScope scope(*b.runner, table, b.text_encoder ? table.size() / b.text_encoder->out_elems() : 0);
  if (!b.decoder) {
    run_plan(req, *b.runner, out, st);
    return;
  }
  // the plan's output (latents) goes through the decoder
  if (r.plan.elems[r.plan.output] != b.decoder->in_elems() || b.decoder->takes_codes())
    fail(EDGEGEN_ERR_MALFORMED, "the plan's output does not match the decoder's input");
  std::vector<float> z(size_t(p.n) * r.plan.elems[r.plan.output]);
  run_plan(req, *b.runner, z.data(), st);
  progress.check();
  b.decoder->decode_latents(z.data(), p.n, r.batch, out, st);
  if (img.mask && b.image_encoder) paste_unmasked(b, img, p.n, out);
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
    sample_plan(*b, *params, progress, out, out_count, st);
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

edgegen_status edgegen_tokenize(edgegen_bundle *h, const char *text, int64_t *ids, size_t cap, size_t *len) {
  return guarded([&] {
    auto b = lookup(h);
    require(text, "text");
    require(ids, "ids");
    require(len, "len");
    const size_t need = size_t(std::max<int64_t>(b->condition->prompt_length(), 0));
    if (b->condition->kind() == "prompt" && cap < need)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "cap is " + std::to_string(cap) + " but the prompt row has " + std::to_string(need) +
                                             " ids (the text length)");
    size_t used = 0;
    const std::vector<int64_t> row = b->condition->tokenize(text, used);  // the tokenizer's own lock
    std::copy(row.begin(), row.end(), ids);
    *len = used;
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
