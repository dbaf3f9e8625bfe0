// edgegen.hpp - header-only C++ RAII wrapper over the C API (edgegen.h).
//
//   edgegen::Bundle bundle("bundles/ddpm-small");            // throws edgegen::Exception
//   edgegen::SampleParams p;  p.n = 16;  p.seed = 0;  p.label = 3;
//   std::vector<float> x = bundle.sample(p);                 // (16, C, H, W)
//   std::vector<int64_t> ids = {18, 68, 92, 62};              // latent text-to-image / DALL-E
//   p.prompt(ids).init(image.data(), 1, 1, 32, 32).inpaint(mask.data(), 32, 32);  // ABI 4
//   const char *text[] = {"a handwritten seven"};  p.prompt_text(text);   // ABI 5: tokenized in C++
//   std::vector<int64_t> row = bundle.tokenize("a handwritten seven");    // the padded ids
//
// Failures throw edgegen::Exception carrying the status and the last-error message.
// Thread safety is the C API's: a Bundle may be shared between threads (calls serialize).
#ifndef EDGEGEN_HPP
#define EDGEGEN_HPP

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "edgegen.h"

namespace edgegen {

class Exception : public std::runtime_error {
 public:
  Exception(edgegen_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
  edgegen_status status() const noexcept { return status_; }

 private:
  edgegen_status status_;
};

inline void check(edgegen_status s) {
  if (s != EDGEGEN_OK) throw Exception(s, edgegen_last_error());
}

struct LoadParams : edgegen_load_params {
  LoadParams() { edgegen_load_params_init(this); }
  // Per-stage devices (ABI 5; nullptr = `device`), e.g. devices("CPU", "GPU", "CPU"). The strings
  // must outlive the load call.
  LoadParams &devices(const char *text_encoder, const char *denoiser, const char *decoder) {
    text_encoder_device = text_encoder;
    denoiser_device = denoiser;
    decoder_device = decoder;
    return *this;
  }
};

struct SampleParams : edgegen_sample_params {
  SampleParams() { edgegen_sample_params_init(this); }
  // Prompt token ids (one prompt for every sample; `edgegen tokenize` prints them). The vector
  // must outlive the sample call.
  SampleParams &prompt(const std::vector<int64_t> &ids) {
    prompt_tokens = ids.data();
    prompt_len = ids.size();
    prompt_count = 1;
    return *this;
  }
  // Prompt text (ABI 5): count UTF-8 strings (1 = one for every sample, or n), tokenized by the
  // library; exclusive with prompt(ids). The array and strings must outlive the sample call.
  SampleParams &prompt_text(const char *const *texts, uint32_t count = 1) {
    prompts = texts;
    prompt_count = count;
    return *this;
  }
  // Image-to-image (ABI 4): count images of c x h x w floats in the data range (1 = one for every
  // sample), and the strength (NaN = 0.6; with a mask, the stored inpainting plan).
  SampleParams &init(const float *image, uint32_t count, uint32_t c, uint32_t h, uint32_t w) {
    init_image = image;
    image_count = count;
    image_channels = c;
    image_height = h;
    image_width = w;
    return *this;
  }
  // Inpainting (ABI 4): h x w of 1 (generate) / 0 (keep), the image's height and width.
  SampleParams &inpaint(const float *m, uint32_t h, uint32_t w) {
    mask = m;
    mask_height = h;
    mask_width = w;
    return *this;
  }
  // Preview (ABI 5): fn(done, total, image, n, c, h, w, user) after every `every`-th plan step with
  // the running batch's x0 prediction, decoded when the bundle has a decoder; non-zero cancels.
  SampleParams &on_preview(edgegen_preview_fn fn, void *user = nullptr, uint32_t every = 1) {
    preview = fn;
    preview_user = user;
    preview_every = every;
    return *this;
  }
};

class Bundle {
 public:
  explicit Bundle(const std::string &path, const edgegen_load_params &params = LoadParams()) {
    check(edgegen_bundle_load(path.c_str(), &params, &handle_));
  }
  ~Bundle() { edgegen_bundle_free(handle_); }
  Bundle(const Bundle &) = delete;
  Bundle &operator=(const Bundle &) = delete;
  Bundle(Bundle &&o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}
  Bundle &operator=(Bundle &&o) noexcept {
    if (this != &o) {
      edgegen_bundle_free(handle_);
      handle_ = std::exchange(o.handle_, nullptr);
    }
    return *this;
  }

  edgegen_bundle_info info() const {
    edgegen_bundle_info out;
    check(edgegen_bundle_get_info(handle_, &out));
    return out;
  }

  std::vector<std::string> plan_keys() const {
    size_t needed = 0;
    check(edgegen_bundle_plan_keys(handle_, nullptr, 0, &needed));
    std::string buf(needed, '\0');
    check(edgegen_bundle_plan_keys(handle_, &buf[0], buf.size(), &needed));
    buf.resize(needed - 1);
    std::vector<std::string> keys;
    size_t start = 0;
    while (start < buf.size()) {
      size_t end = buf.find(',', start);
      if (end == std::string::npos) end = buf.size();
      keys.push_back(buf.substr(start, end - start));
      start = end + 1;
    }
    return keys;
  }

  // n samples, row-major (n, C, H, W); stats (optional) receives the timings.
  std::vector<float> sample(const edgegen_sample_params &params, edgegen_stats *stats = nullptr) const {
    size_t count = 0;
    check(edgegen_sample_count(handle_, &params, &count));
    std::vector<float> out(count);
    check(edgegen_sample(handle_, &params, out.data(), out.size(), stats));
    return out;
  }

  // The bundle's stages (ABI 3): generator "plan" or "tokens", condition, decoder, token counts;
  // ABI 4: whether it has a text encoder and takes an init image / mask.
  edgegen_stage_info stages() const {
    edgegen_stage_info out;
    check(edgegen_bundle_stages(handle_, &out));
    return out;
  }

  // Prompt text -> the token ids of the bundle's tokenizer (ABI 5), right-padded with the pad id to
  // the text length; `used` (optional) gets the number of ids before the padding.
  std::vector<int64_t> tokenize(const std::string &text, size_t *used = nullptr) const {
    const size_t length = size_t(std::max<int64_t>(stages().prompt_length, 0));
    std::vector<int64_t> ids(std::max<size_t>(length, 1));  // a model without prompts: UNSUPPORTED, not NULL
    size_t len = 0;
    check(edgegen_tokenize(handle_, text.c_str(), ids.data(), ids.size(), &len));
    ids.resize(length);
    if (used) *used = len;
    return ids;
  }

  // Token models: the generated codes only (n x image_tokens), without decoding.
  std::vector<int64_t> sample_codes(edgegen_sample_params params, edgegen_stats *stats = nullptr) const {
    std::vector<int64_t> codes(size_t(params.n) * size_t(stages().image_tokens));
    params.codes_out = codes.data();
    params.codes_count = codes.size();
    check(edgegen_sample(handle_, &params, nullptr, 0, stats));
    return codes;
  }

  // Stops the samples running on this bundle (from any thread); they throw Exception with
  // status EDGEGEN_ERR_CANCELLED.
  void cancel() const { check(edgegen_cancel(handle_)); }

  edgegen_bundle *get() const noexcept { return handle_; }

 private:
  edgegen_bundle *handle_ = nullptr;
};

}  // namespace edgegen

#endif  // EDGEGEN_HPP
