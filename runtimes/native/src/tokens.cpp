#include "tokens.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>

#include "error.hpp"
#include "rng.hpp"

namespace edgegen {

namespace {

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// numpy's float64 add.reduce of a contiguous row: 0 + pairwise_sum (numpy/_core/src/umath/loops_utils.h:
// below 8 values a plain loop; up to 128, eight running sums then the rest; above, halves at a
// multiple of 8). Hand-written because the token must match Python's bit for bit; checked against
// np.sum in tests/native/test_native_tokens.py through edgegen_next_tokens.
double pairwise_sum(const double *a, size_t n) {
  if (n < 8) {
    double r = 0.0;
    for (size_t i = 0; i < n; ++i) r += a[i];
    return r;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

double np_sum(const std::vector<double> &a) { return 0.0 + pairwise_sum(a.data(), a.size()); }

}  // namespace

void check_token_sampling(const TokenSampling &c) {
  if (!std::isfinite(c.temperature) || c.temperature < 0)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "temperature must be a finite number >= 0 (0 = greedy), got " + num(c.temperature));
  if (c.top_k < 0)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "top-k must be a positive integer (0 turns it off), got " + std::to_string(c.top_k));
  if (!(c.top_p > 0.0 && c.top_p <= 1.0))
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "top-p must be in (0, 1] (1 = off), got " + num(c.top_p));
}

int64_t next_token(const float *logits, size_t vocab, double u, const TokenSampling &cfg, TokenScratch &s) {
  if (vocab == 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the logits are empty");
  if (cfg.temperature == 0.0) {  // np.argmax: the first largest value
    size_t best = 0;
    for (size_t i = 1; i < vocab; ++i)
      if (double(logits[i]) > double(logits[best])) best = i;
    return int64_t(best);
  }
  std::vector<double> &p = s.p;
  p.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) p[i] = double(logits[i]) / cfg.temperature;
  const double mx = *std::max_element(p.begin(), p.end());
  for (double &v : p) v = std::exp(v - mx);
  const double total = np_sum(p);
  for (double &v : p) v /= total;
  // order by p descending, ties by index ascending (np.argsort(-p, kind="stable"))
  s.order.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) s.order[i] = int64_t(i);
  std::stable_sort(s.order.begin(), s.order.end(), [&](int64_t a, int64_t b) { return -p[a] < -p[b]; });
  std::vector<double> &ps = s.ps;
  ps.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) ps[i] = p[s.order[i]];
  size_t kept_n = vocab;  // keep is a prefix of the order: [0, kept_n)
  if (cfg.top_k > 0) kept_n = std::min<size_t>(size_t(cfg.top_k), vocab);
  if (cfg.top_p < 1.0) {
    std::vector<double> &mass = s.mass;
    mass.assign(vocab, 0.0);
    for (size_t i = 0; i < kept_n; ++i) mass[i] = ps[i];
    const double msum = np_sum(mass);
    for (double &v : mass) v /= msum;
    double cum = 0.0;  // before = cumsum(mass) - mass: keep the positions with before < top_p
    size_t keep_p = 0;
    for (size_t i = 0; i < kept_n; ++i) {
      cum += mass[i];
      if (cum - mass[i] < cfg.top_p) keep_p = i + 1;
      else break;  // before is non-decreasing: the kept set stays a prefix
    }
    kept_n = keep_p;
  }
  kept_n = std::max<size_t>(kept_n, 1);  // the first index is always kept
  std::vector<double> &cum = s.cum;
  cum.resize(vocab);
  double acc = 0.0;
  for (size_t i = 0; i < vocab; ++i) {
    acc += i < kept_n ? ps[i] : 0.0;
    cum[i] = acc;
  }
  const double target = u * cum[vocab - 1];
  size_t pos = 0;  // (cum < target).sum()
  for (size_t i = 0; i < vocab; ++i) pos += cum[i] < target ? 1 : 0;
  pos = std::min(pos, kept_n - 1);
  return s.order[pos];
}

double token_uniform(uint64_t seed, uint32_t sample, uint32_t draw) {
  const rng::Block r = rng::philox4x32_10({0u, sample, draw, rng::STREAM_TOKENS}, uint32_t(seed & 0xFFFFFFFFu),
                                          uint32_t(seed >> 32));
  return (double(r[0]) + 0.5) * 0x1p-32;
}

StepRunner::StepRunner(const RoleSpec &role, Network &net, const json &cache) : role_(role), net_(net) {
  if (role.inputs.size() != 2 || role.outputs.size() != 2)
    fail(EDGEGEN_ERR_MALFORMED, "a token model's step role takes (tokens, past_kv) and returns (logits, present_kv)");
  const std::string tok = role.token_input.empty() ? "tokens" : role.token_input;
  for (int i = 0; i < 2; ++i) (role.inputs[i].name == tok ? tok_idx_ : kv_idx_) = i;
  if (tok_idx_ < 0 || kv_idx_ < 0) fail(EDGEGEN_ERR_MALFORMED, "the step role has no token input '" + tok + "'");
  if (role.inputs[tok_idx_].dtype != DType::I64 || role.inputs[kv_idx_].dtype != DType::F32)
    fail(EDGEGEN_ERR_UNSUPPORTED, "the step role must take int64 tokens and a float32 cache");
  if (role.outputs[0].name == "present_kv") std::swap(logits_idx_, present_idx_);
  try {
    layers_ = cache.at("layers").get<int64_t>();
    heads_ = cache.at("heads").get<int64_t>();
    head_dim_ = cache.at("head_dim").get<int64_t>();
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, std::string("the generator's cache is malformed: ") + e.what());
  }
  if (layers_ <= 0 || heads_ <= 0 || head_dim_ <= 0 || layers_ * heads_ * head_dim_ > (int64_t(1) << 24))
    fail(EDGEGEN_ERR_MALFORMED, "the generator's cache dims must be positive (and not absurdly large)");
  const auto &lshape = role.outputs[logits_idx_].shape;
  if (lshape.size() != 3 || lshape[2] <= 0) fail(EDGEGEN_ERR_MALFORMED, "the step role's logits must be (batch, seq, vocab)");
  vocab_ = lshape[2];
  vocab_in_ = role.vocab_in > 0 ? role.vocab_in : vocab_;
  block_size_ = role.block_size > 0 ? role.block_size : (int64_t(1) << 24);
}

// -- the static-shape cache -------------------------------------------------------------------
// One static role: its network and where its inputs and outputs are.
struct StaticRole {
  std::unique_ptr<Network> owned;
  Network *net = nullptr;
  int tok = -1, cache = -1, pos = -1, logits = -1, kv_new = -1;
  int64_t seq = 0;
};

struct StepRunner::Static {
  StaticRole decode, prefill;  // prefill.net == decode.net when the prompt is one token
  int64_t capacity = 0, prefill_len = 0;
  std::vector<int64_t> column;  // one token per sample: a chunk of a chunked prefill
};

StepRunner::~StepRunner() = default;

namespace {

int index_of(const std::vector<TensorSpec> &ts, const std::string &name, const std::string &role) {
  for (size_t i = 0; i < ts.size(); ++i)
    if (ts[i].name == name) return int(i);
  fail(EDGEGEN_ERR_MALFORMED, "the static step role '" + role + "' has no tensor '" + name + "'");
}

}  // namespace

void StepRunner::use_static_kv(const Manifest &m, const OpenNetwork &open) {
  if (!m.sampling.contains("static_kv")) return;  // bundles exported before issue 17's static cache
  auto st = std::make_unique<Static>();
  std::string names[2];
  try {
    const json &info = m.sampling.at("static_kv");
    names[0] = info.at("decode").get<std::string>();
    names[1] = info.at("prefill").get<std::string>();
    st->capacity = info.at("capacity").get<int64_t>();
    st->prefill_len = info.at("prefill_len").get<int64_t>();
    const std::string cache_in = info.at("cache_input"), pos_in = info.at("position_input"), new_out = info.at("new_output");
    for (int k = 0; k < 2; ++k) {
      StaticRole &r = k == 0 ? st->decode : st->prefill;
      const RoleSpec &spec = m.role(names[k]);
      r.tok = index_of(spec.inputs, spec.token_input.empty() ? "tokens" : spec.token_input, names[k]);
      r.cache = index_of(spec.inputs, cache_in, names[k]);
      r.pos = index_of(spec.inputs, pos_in, names[k]);
      r.logits = index_of(spec.outputs, "logits", names[k]);
      r.kv_new = index_of(spec.outputs, new_out, names[k]);
      const auto &ts = spec.inputs[r.tok].shape, &cs = spec.inputs[r.cache].shape;
      const std::vector<int64_t> want_cache{DIM_BATCH, layers_, 2, heads_, st->capacity, head_dim_};
      if (spec.inputs.size() != 3 || spec.outputs.size() != 2 || ts.size() != 2 || ts[1] <= 0 || cs != want_cache ||
          spec.inputs[r.tok].dtype != DType::I64 || spec.inputs[r.pos].dtype != DType::I64 ||
          spec.inputs[r.cache].dtype != DType::F32)
        fail(EDGEGEN_ERR_MALFORMED, "the static step role '" + names[k] + "' does not match the generator's cache");
      r.seq = ts[1];
    }
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, std::string("the generator's static_kv entry is malformed: ") + e.what());
  }
  if (st->capacity <= 0 || st->capacity > (int64_t(1) << 16))  // before a cache of that size is allocated
    fail(EDGEGEN_ERR_MALFORMED, "the static cache capacity must be in 1..65536");
  if (st->decode.seq != 1 || st->prefill.seq != st->prefill_len || st->capacity != block_size_)
    fail(EDGEGEN_ERR_MALFORMED, "the static step roles' sequence lengths or capacity do not match static_kv");
  try {
    st->decode.owned = open(names[0]);
    if (names[1] != names[0]) st->prefill.owned = open(names[1]);
  } catch (const Error &e) {
    if (e.status() == EDGEGEN_ERR_UNSUPPORTED) return;  // no file in this backend's format: the dynamic step
    throw;
  }
  st->decode.net = st->decode.owned.get();
  st->prefill.net = names[1] != names[0] ? st->prefill.owned.get() : st->decode.net;
  static_ = std::move(st);
}

void StepRunner::call_static(int64_t batch, const int64_t *tokens, int64_t seq, std::vector<float> &past,
                             int64_t &past_len, std::vector<float> &last, edgegen_stats &stats) {
  Static &s = *static_;
  const int64_t rows = batch * layers_ * 2 * heads_;  // (B, L, 2, H) slabs of C x Dh
  if (past_len == 0) past.assign(size_t(rows * s.capacity * head_dim_), 0.f);  // an empty cache
  if (past_len + seq > s.capacity)
    fail(EDGEGEN_ERR_MALFORMED, "the tokens do not fit the static cache of " + std::to_string(s.capacity));
  auto one = [&](const StaticRole &r, const int64_t *ids, int64_t n) {  // n tokens at slots past_len ..
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t pos = past_len;
    std::vector<HostTensor> in(3);
    in[r.tok] = {ids, DType::I64, {batch, n}};
    in[r.cache] = {past.data(), DType::F32, {batch, layers_, 2, heads_, s.capacity, head_dim_}};
    in[r.pos] = {&pos, DType::I64, {1}};
    r.net->run_all(in, batch, outs_);
    const OutTensor &lg = outs_[r.logits], &kv = outs_[r.kv_new];
    if (lg.shape != std::vector<int64_t>{batch, n, vocab_} ||
        kv.shape != std::vector<int64_t>{batch, layers_, 2, heads_, n, head_dim_})
      fail(EDGEGEN_ERR_RUNTIME, "the static step network returned logits or cache entries of an unexpected shape");
    const size_t slab = size_t(n * head_dim_);  // the new entries of one (b, l, k/v, h)
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(&past[size_t((i * s.capacity + pos) * head_dim_)], &kv.data[size_t(i) * slab], slab * sizeof(float));
    last.resize(size_t(batch * vocab_));
    for (int64_t b = 0; b < batch; ++b)
      std::memcpy(&last[size_t(b * vocab_)], &lg.data[size_t((b * n + n - 1) * vocab_)], size_t(vocab_) * sizeof(float));
    past_len += n;
    stats.network_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats.network_calls += 1;
  };
  if (past_len == 0 && seq == s.prefill_len) {
    one(s.prefill, tokens, seq);
    return;
  }
  s.column.resize(size_t(batch));
  for (int64_t j = 0; j < seq; ++j) {  // chunked: one token per decode call
    for (int64_t b = 0; b < batch; ++b) s.column[size_t(b)] = tokens[b * seq + j];
    one(s.decode, s.column.data(), 1);
  }
}

void StepRunner::call(int64_t batch, const int64_t *tokens, int64_t seq, std::vector<float> &past, int64_t &past_len,
                      std::vector<float> &last, edgegen_stats &stats) {
  if (static_) {
    call_static(batch, tokens, seq, past, past_len, last, stats);
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  static const float empty = 0.f;  // an OpenVINO tensor of zero elements still wants a pointer
  std::vector<HostTensor> in(2);
  in[tok_idx_] = {tokens, DType::I64, {batch, seq}};
  in[kv_idx_] = {past.empty() ? &empty : past.data(), DType::F32, {batch, layers_, 2, heads_, past_len, head_dim_}};
  net_.run_all(in, batch, outs_);
  const OutTensor &lg = outs_[logits_idx_];
  OutTensor &kv = outs_[present_idx_];
  const std::vector<int64_t> want_kv{batch, layers_, 2, heads_, past_len + seq, head_dim_};
  if (lg.shape != std::vector<int64_t>{batch, seq, vocab_} || kv.shape != want_kv)
    fail(EDGEGEN_ERR_RUNTIME, "the step network returned logits or a cache of an unexpected shape");
  last.resize(size_t(batch * vocab_));
  for (int64_t b = 0; b < batch; ++b)
    std::memcpy(&last[size_t(b * vocab_)], &lg.data[size_t((b * seq + seq - 1) * vocab_)], size_t(vocab_) * sizeof(float));
  past.swap(kv.data);
  past_len += seq;
  stats.network_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats.network_calls += 1;
}

void run_tokens(const TokenRequest &req, StepRunner &step, int64_t *codes, edgegen_stats &stats) {
  check_token_sampling(req.sampling);
  const int64_t n_tok = req.image_tokens;
  if (req.progress) {
    const uint64_t batches = (uint64_t(req.n) + req.batch_size - 1) / req.batch_size;
    req.progress->total = batches * uint64_t(n_tok);
    req.progress->done = 0;
  }
  TokenScratch scratch;
  std::vector<float> past, last;
  std::vector<int64_t> fed;
  for (uint32_t start = 0; start < req.n; start += req.batch_size) {
    const uint32_t b = std::min(req.batch_size, req.n - start);
    past.clear();
    int64_t past_len = 0;
    if (req.progress) req.progress->check();
    step.call(b, req.prompt + size_t(start) * size_t(req.prompt_len), req.prompt_len, past, past_len, last, stats);
    int64_t *out = codes + size_t(start) * size_t(n_tok);
    fed.resize(b);
    for (int64_t i = 0; i < n_tok; ++i) {
      for (uint32_t k = 0; k < b; ++k) {
        const double u = token_uniform(req.seed, start + k, uint32_t(i));
        out[size_t(k) * n_tok + i] = next_token(&last[size_t(k) * step.vocab()], size_t(step.vocab()), u, req.sampling, scratch);
      }
      if (req.progress) req.progress->step();
      if (i + 1 < n_tok) {  // decode: one token, the cache grows by one
        for (uint32_t k = 0; k < b; ++k) fed[k] = out[size_t(k) * n_tok + i] + req.code_offset;
        step.call(b, fed.data(), 1, past, past_len, last, stats);
      }
    }
  }
}

}  // namespace edgegen
