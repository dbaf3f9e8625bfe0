// THE token loop in C++: prefill, then one-token decode steps with the KV cache, sampling each
// token from the logits exactly as runtimes/tokens.py does (its docstring is the specification):
// the same seed gives the same tokens as Python, for any batch size.
#pragma once
#include <cstdint>
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
class StepRunner {
 public:
  StepRunner(const RoleSpec &role, Network &net, const json &cache);
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
