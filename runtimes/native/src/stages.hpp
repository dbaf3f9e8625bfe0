// The pipeline stages around the generator (runtimes/stages.py is the reference): what each
// sample is conditioned on (labels, a label token, prompt token ids), the encoders that run
// before the generator (a text encoder on prompt ids, an image encoder for image-to-image on
// latent models) and the decoder that turns the generator's output (codes, latents) into images.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgegen.h"
#include "interpreter.hpp"
#include "manifest.hpp"
#include "network.hpp"
#include "tokenizer.hpp"

namespace edgegen {

// The condition stage: kind none, label, label_token or prompt. A prompt model takes token ids
// (edgegen tokenize) or, when its bundle has a tokenizer model, text (tokenizer.hpp). A prompt stage may name a text
// encoder role (latent models): its ids then go through an EncoderStage (the C API runs it).
class ConditionStage {
 public:
  explicit ConditionStage(const Manifest &m);
  const std::string &kind() const { return kind_; }
  // Labels of the n samples as the C API's labels / label fields give them (LabelCondition.labels).
  std::vector<int64_t> labels(uint32_t n, const int64_t *labels, int64_t label) const;
  // The token models' prompt, n x prompt_length() ids: the label token, or the caller's prompt
  // token ids right-padded with the tokenizer's pad id (text.py's rules: empty and too-long
  // prompts are refused, not truncated).
  std::vector<int64_t> prompt(uint32_t n, const edgegen_sample_params &p) const;
  int64_t prompt_length() const;  // 1 for label tokens, the text length for prompts, 0 otherwise
  int64_t text_vocab() const { return text_vocab_; }
  int64_t pad_id() const { return pad_id_; }
  // The text encoder stage (role, input, output) when the prompt is encoded; null otherwise.
  const json &encoder() const { return encoder_; }
  bool has_encoder() const { return !encoder_.is_null(); }
  // Prompt text (ABI 5): whether the bundle has a tokenizer model, and one prompt -> text-length ids,
  // right-padded (`used`: the ids before the padding); Error(UNSUPPORTED) without a tokenizer model.
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  std::vector<int64_t> tokenize(const char *text, size_t &used) const;

 private:
  const Manifest &m_;
  std::string kind_;
  int64_t offset_ = 0;                       // label_token: token = offset + label
  int64_t text_length_ = 0, pad_id_ = -1, text_vocab_ = 0;  // prompt
  json encoder_;                                          // prompt: the text encoder stage, or null
  std::unique_ptr<Tokenizer> tokenizer_;                  // prompt: text -> ids, when the bundle has the model
};

// A role run before the generator (RoleStage in Python, direction "encode"): the text encoder
// (token ids -> context rows) and a latent model's image encoder (images -> latents, multiplied by
// float32(scale) after the role when the stage has one). One role call per batch of `batch` rows.
class EncoderStage {
 public:
  EncoderStage(const Manifest &m, const json &stage, Network &net);
  size_t in_elems() const { return in_elems_; }
  size_t out_elems() const { return out_elems_; }
  bool takes_ids() const { return in_dtype_ != DType::F32; }
  void encode_ids(const int64_t *ids, size_t n, uint32_t batch, float *out, edgegen_stats &stats);
  void encode_floats(const float *x, size_t n, uint32_t batch, float *out, edgegen_stats &stats);

 private:
  void call(const void *in, uint32_t b, float *out, edgegen_stats &stats);
  const RoleSpec &role_;
  Network &net_;
  DType in_dtype_;
  size_t in_elems_ = 0, out_elems_ = 0;
  bool scaled_ = false;
  float scale_ = 1.f;
  std::vector<int32_t> i32_;
};

// The decoder stage (RoleStage in Python): one role call per batch on codes (int) or latents
// (float32, multiplied by float32(1 / scale) first when the stage has a scale).
class DecoderStage {
 public:
  DecoderStage(const Manifest &m, Network &net);
  size_t in_elems() const { return in_elems_; }
  size_t out_elems() const { return out_elems_; }
  bool takes_codes() const { return in_dtype_ != DType::F32; }
  void decode_codes(const int64_t *codes, uint32_t n, uint32_t batch, float *out, edgegen_stats &stats);
  void decode_latents(const float *z, uint32_t n, uint32_t batch, float *out, edgegen_stats &stats);

 private:
  void call(const void *in, uint32_t b, float *out, edgegen_stats &stats);
  const RoleSpec &role_;
  Network &net_;
  DType in_dtype_;
  size_t in_elems_ = 0, out_elems_ = 0;
  bool scaled_ = false;
  float inv_scale_ = 1.f;
  std::vector<int32_t> i32_;
  std::vector<float> f32_;
};

}  // namespace edgegen
