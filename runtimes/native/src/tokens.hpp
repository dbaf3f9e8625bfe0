// THE token loop in C++: prefill, then one-token decode steps with the KV cache, sampling each
// token from the logits exactly as runtimes/tokens.py does (its docstring is the specification):
// the same seed gives the same tokens as Python, for any batch size.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "edgegen.h"
#include "interpreter.hpp"
#include "manifest.hpp"
#include "network.hpp"

namespace edgegen {

struct TokenSampling {
  double temperature = 1.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
};

// Error(INVALID_ARGUMENT) with Python's messages (TokenSampling.check) for bad settings.
void check_token_sampling(const TokenSampling &cfg);

// One token from logits (vocab,) and a uniform u in (0, 1): tokens.py next_tokens, in float64
// with numpy's summation order (pairwise sums, sequential cumulative sums), so rounding agrees.
// `scratch` is reused between calls.
struct TokenScratch {
  std::vector<double> p, ps, mass, cum;
  std::vector<int64_t> order;
};
int64_t next_token(const float *logits, size_t vocab, double u, const TokenSampling &cfg, TokenScratch &scratch);

// The uniform of token `draw` of global sample `sample`: Philox (seed, sample, draw, STREAM_TOKENS), word 0.
double token_uniform(uint64_t seed, uint32_t sample, uint32_t draw);

// The step network of a token model: tokens (B, S) int64 and past_kv (B, L, 2, H, P, Dh) float32
// -> logits (B, S, V) and present_kv (B, L, 2, H, P + S, Dh); the role's meta.token_input names
// the token input, the other input is the cache (train/transformer.py exports it).
//
// A bundle exported with a static-shape cache (the generator's static_kv entry; train/static_kv.py)
// has roles with one shape each: tokens (B, S), kv_cache (B, L, 2, H, C, Dh), pos (1,) -> logits
// (B, S, V), kv_new (B, L, 2, H, S, Dh). After use_static_kv the runner calls those instead: `past`
// is then the fixed-capacity cache (C slots, zeros at past_len 0), `past_len` the write position;
// the new entries are written into slots past_len .. past_len+S-1 here. The prompt is one call of
// the prefill role when its length is the role's, else chunked through the decode role.
class StepRunner {
 public:
  StepRunner(const RoleSpec &role, Network &net, const json &cache);
  ~StepRunner();
  using OpenNetwork = std::function<std::unique_ptr<Network>(const std::string &role)>;
  // Switches to the bundle's static-shape roles when it has them (opened with `open`); a no-op for
  // bundles without them, or whose static roles lack the backend's format.
  void use_static_kv(const Manifest &m, const OpenNetwork &open);
  bool static_kv() const { return static_ != nullptr; }
  // logits of the last position, (B, V) row-major, into `last`; the cache is replaced by present_kv.
  void call(int64_t batch, const int64_t *tokens, int64_t seq, std::vector<float> &past, int64_t &past_len,
            std::vector<float> &last, edgegen_stats &stats);
  int64_t vocab() const { return vocab_; }
  int64_t vocab_in() const { return vocab_in_; }
  int64_t block_size() const { return block_size_; }

 private:
  const RoleSpec &role_;
  Network &net_;
  int tok_idx_ = -1, kv_idx_ = -1, logits_idx_ = 0, present_idx_ = 1;
  int64_t layers_, heads_, head_dim_, vocab_, vocab_in_, block_size_;
  std::vector<OutTensor> outs_;
  struct Static;
  std::unique_ptr<Static> static_;
  void call_static(int64_t batch, const int64_t *tokens, int64_t seq, std::vector<float> &past, int64_t &past_len,
                   std::vector<float> &last, edgegen_stats &stats);
};

struct TokenRequest {
  const int64_t *prompt;  // n x prompt_len ids (label token, or the tokenized prompt)
  int64_t prompt_len;
  uint32_t n;
  uint64_t seed;
  uint32_t batch_size;
  int64_t image_tokens;  // tokens generated per sample
  int64_t code_offset;   // output code c is fed back as input id c + code_offset
  TokenSampling sampling;
  Progress *progress = nullptr;  // one step per generated token, across batches
};

// Generates n x image_tokens codes (row-major) into `codes`.
void run_tokens(const TokenRequest &req, StepRunner &step, int64_t *codes, edgegen_stats &stats);

}  // namespace edgegen
