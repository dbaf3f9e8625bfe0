#include "stages.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "paths.hpp"
#include "tokenizer.hpp"

namespace fs = std::filesystem;

namespace edgegen {

namespace {

struct TokenizerInfo {
  int64_t pad_id = -1, unk_id = -1;
  int64_t vocab = 0;  // the largest id of the vocabulary and the added tokens, plus one
  std::u32string alphabet;  // the single-character tokens (text.py's known characters)
};

// The pad id and vocabulary size of the bundle's tokenizer (Hugging Face tokenizer.json; text.py
// pads with "[PAD]").
TokenizerInfo read_tokenizer(const Manifest &m, const std::string &rel) {
  bool listed = false;  // only a file the manifest lists (contained, hashed) is opened
  for (const auto &[name, entry] : m.side_files.items())
    if (entry.is_object() && entry.value("path", std::string()) == rel) listed = true;
  if (!listed) fail(EDGEGEN_ERR_MALFORMED, "the prompt stage's tokenizer '" + rel + "' is not listed in the manifest's files");
  const std::string path = (fs::path(m.root) / rel).string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail(EDGEGEN_ERR_NOT_FOUND, "bundle file missing: " + path);
  if (fs::file_size(path, ec) > MAX_MANIFEST_BYTES) fail(EDGEGEN_ERR_MALFORMED, path + " is larger than 64 MiB");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  try {
    const json t = json::parse(text.str());
    TokenizerInfo out;
    if (t.contains("added_tokens"))
      for (const auto &a : t["added_tokens"]) {
        const int64_t id = a.at("id").get<int64_t>();
        out.vocab = std::max(out.vocab, id + 1);
        if (a.value("content", std::string()) == "[PAD]") out.pad_id = id;
        if (a.value("content", std::string()) == "[UNK]") out.unk_id = id;
      }
    const json &vocab = t.at("model").at("vocab");
    for (const auto &[tok, id] : vocab.items()) {
      out.vocab = std::max(out.vocab, id.get<int64_t>() + 1);
      char32_t c = 0;
      if (single_codepoint(tok, c)) out.alphabet.push_back(c);
    }
    if (out.pad_id < 0) out.pad_id = vocab.at("[PAD]").get<int64_t>();
    if (out.unk_id < 0 && vocab.contains("[UNK]")) out.unk_id = vocab.at("[UNK]").get<int64_t>();
    return out;
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, "cannot read the pad token of " + path + ": " + e.what());
  }
}

}  // namespace

ConditionStage::ConditionStage(const Manifest &m) : m_(m) {
  try {
    kind_ = m.condition.value("kind", std::string("none"));
    if (kind_ == "label_token") {
      offset_ = m.condition.at("offset").get<int64_t>();
    } else if (kind_ == "prompt") {
      text_length_ = m.condition.at("tokenizer").at("text_length").get<int64_t>();
      if (text_length_ <= 0 || text_length_ > MAX_DIM) fail(EDGEGEN_ERR_MALFORMED, "the tokenizer's text_length is out of range");
      const TokenizerInfo tok = read_tokenizer(m, m.condition["tokenizer"].at("file").get<std::string>());
      pad_id_ = tok.pad_id;
      const json &model = m.condition["tokenizer"].value("openvino", json());
      if (model.is_string() && tok.unk_id >= 0)  // prompt text (export/tokenizer_export.py)
        tokenizer_ = std::make_unique<Tokenizer>(m, model.get<std::string>(), text_length_, pad_id_, tok.unk_id,
                                                 tok.alphabet);
      if (m.condition.contains("encoder") && !m.condition["encoder"].is_null()) {
        encoder_ = m.condition["encoder"];
        if (!encoder_.is_object() || !encoder_.contains("role"))
          fail(EDGEGEN_ERR_MALFORMED, "the prompt stage's encoder must name a role");
        // The null (empty-prompt) context is all padding; another null prompt needs a tokenizer here.
        const std::string null_prompt = m.condition.value("null_prompt", std::string());
        if (null_prompt.find_first_not_of(" \t\n\r") != std::string::npos)
          fail(EDGEGEN_ERR_UNSUPPORTED, "this model's null prompt is '" + null_prompt + "'; the native runtime takes only "
                                        "the empty null prompt (it does not tokenize text)");
        text_vocab_ = tok.vocab;  // ids index the text encoder's embedding
      } else {
        text_vocab_ = m.sampling.value("code_offset", int64_t{0});
      }
    } else if (kind_ != "none" && kind_ != "label") {
      fail(EDGEGEN_ERR_UNSUPPORTED, "unknown condition stage '" + kind_ + "' (this runtime knows none, label, "
                                    "label_token, prompt)");
    }
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, std::string("malformed condition stage in manifest: ") + e.what());
  }
}

int64_t ConditionStage::prompt_length() const {
  return kind_ == "label_token" ? 1 : kind_ == "prompt" ? text_length_ : 0;
}

std::vector<int64_t> ConditionStage::labels(uint32_t n, const int64_t *labels, int64_t label) const {
  const int64_t k = m_.num_classes;
  auto check_label = [&](int64_t y) {
    if (k == 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model is unconditional: it takes no label");
    if (y < 0 || y >= k)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "label " + std::to_string(y) + " is out of range (this model has labels 0.." +
                                             std::to_string(k - 1) + ")");
  };
  std::vector<int64_t> out(n);
  if (labels) {
    for (uint32_t i = 0; i < n; ++i) check_label(labels[i]);
    out.assign(labels, labels + n);
  } else if (label >= 0) {
    check_label(label);
    std::fill(out.begin(), out.end(), label);
  } else if (label == -1) {  // 0..K-1 cycled, or the null label (0 if none) for unconditional models
    for (uint32_t i = 0; i < n; ++i) out[i] = k > 0 ? int64_t(i) % k : m_.null_label.value_or(0);
  } else {
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "label must be >= 0, or -1 for the default labels");
  }
  return out;
}

std::vector<int64_t> ConditionStage::tokenize(const char *text, size_t &used) const {
  if (kind_ != "prompt") fail(EDGEGEN_ERR_UNSUPPORTED, "this model takes no prompt (condition '" + kind_ + "')");
  if (!tokenizer_)
    fail(EDGEGEN_ERR_UNSUPPORTED, "this bundle has no tokenizer model for prompt text (re-export it with this edgegen "
                                  "to add tokenizer.xml), pass token ids in prompt_tokens instead");
  if (!text) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt text is NULL");
  return tokenizer_->encode(text, used);
}

std::vector<int64_t> ConditionStage::prompt(uint32_t n, const edgegen_sample_params &p) const {
  if (p.prompts) {  // ABI 5: text, tokenized here
    if (p.prompt_tokens || p.prompt_len)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "give prompt text (prompts) or token ids (prompt_tokens), not both");
    if (kind_ == "label_token")
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model is class-conditional: it takes labels, not a prompt");
    if (p.labels || p.label != -1) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "give a prompt or labels, not both");
    const uint32_t count = p.prompt_count == 0 ? 1 : p.prompt_count;
    if (count != 1 && count != n)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "prompt_count must be 1 (one prompt for every sample) or n = " + std::to_string(n) +
                                             ", got " + std::to_string(count));
    std::vector<int64_t> out(size_t(n) * size_t(text_length_));
    for (uint32_t i = 0; i < n; ++i) {
      size_t used = 0;
      if (i < count) {
        const std::vector<int64_t> row = tokenize(p.prompts[i], used);
        std::copy(row.begin(), row.end(), out.begin() + size_t(i) * size_t(text_length_));
      } else {  // one prompt for all samples
        std::copy(out.begin(), out.begin() + text_length_, out.begin() + size_t(i) * size_t(text_length_));
      }
    }
    return out;
  }
  const bool given = p.prompt_tokens != nullptr || p.prompt_len != 0;
  if (kind_ == "label_token") {
    if (given)
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model is class-conditional: it takes labels, not prompt tokens");
    std::vector<int64_t> y = labels(n, p.labels, p.label);
    for (int64_t &v : y) v += offset_;
    return y;
  }
  if (kind_ != "prompt") fail(EDGEGEN_ERR_UNSUPPORTED, "condition '" + kind_ + "' takes no prompt");
  if (!given)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "this model takes a prompt: pass its text in prompts, or its token ids in "
                                       "prompt_tokens (`edgegen tokenize BUNDLE \"...\"` prints them)");
  if (p.labels || p.label != -1) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "give a prompt or labels, not both");
  if (!p.prompt_tokens) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "prompt_tokens is NULL but prompt_len is " + std::to_string(p.prompt_len));
  const uint32_t count = p.prompt_count == 0 ? 1 : p.prompt_count;
  if (count != 1 && count != n)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "prompt_count must be 1 (one prompt for every sample) or n = " + std::to_string(n) +
                                           ", got " + std::to_string(count));
  const size_t len = p.prompt_len;
  std::vector<int64_t> rows(size_t(count) * size_t(text_length_), pad_id_);
  for (uint32_t r = 0; r < count; ++r) {
    const int64_t *ids = p.prompt_tokens + size_t(r) * len;
    size_t used = len;  // trailing pad ids are padding, not prompt
    while (used > 0 && ids[used - 1] == pad_id_) --used;
    if (used == 0) fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt is empty: describe the image, e.g. \"a handwritten seven\"");
    if (used > size_t(text_length_))
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt is " + std::to_string(used) + " tokens long, more than this model's "
                                             "text length " + std::to_string(text_length_) +
                                             "; shorten it (prompts are rejected, not truncated)");
    for (size_t i = 0; i < used; ++i) {
      if (ids[i] < 0 || (text_vocab_ > 0 && ids[i] >= text_vocab_))
        fail(EDGEGEN_ERR_INVALID_ARGUMENT, "prompt token id " + std::to_string(ids[i]) + " is out of range (this model's "
                                               "text ids are 0.." + std::to_string(text_vocab_ - 1) + ")");
      rows[size_t(r) * size_t(text_length_) + i] = ids[i];
    }
  }
  if (count == n) return rows;
  std::vector<int64_t> out(size_t(n) * size_t(text_length_));
  for (uint32_t i = 0; i < n; ++i) std::copy(rows.begin(), rows.end(), out.begin() + size_t(i) * size_t(text_length_));
  return out;
}

DecoderStage::DecoderStage(const Manifest &m, Network &net)
    : role_(m.role(m.decoder.at("role").get<std::string>())), net_(net) {
  if (role_.inputs.size() != 1)
    fail(EDGEGEN_ERR_UNSUPPORTED, "the decoder role must take one input (codes or latents)");
  const TensorSpec &in = role_.inputs[0], &out = role_.outputs[0];
  if (in.has_dynamic() || out.has_dynamic()) fail(EDGEGEN_ERR_MALFORMED, "the decoder role has a dynamic dim other than the batch");
  if (out.dtype != DType::F32) fail(EDGEGEN_ERR_UNSUPPORTED, "the decoder's output must be float32");
  if (m.decoder.contains("output") && m.decoder["output"].get<std::string>() != out.name)
    fail(EDGEGEN_ERR_UNSUPPORTED, "the decoder stage's output must be its role's first output");
  in_dtype_ = in.dtype;
  if (in_dtype_ == DType::F16) fail(EDGEGEN_ERR_UNSUPPORTED, "a float16 decoder input is not supported");
  in_elems_ = size_t(in.per_sample_elems());
  out_elems_ = size_t(out.per_sample_elems());
  if (m.decoder.contains("scale") && !m.decoder["scale"].is_null()) {
    scaled_ = true;
    inv_scale_ = float(1.0 / m.decoder["scale"].get<double>());  // np.float32(1.0 / scale)
  }
}

void DecoderStage::call(const void *in, uint32_t b, float *out, edgegen_stats &stats) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<HostTensor> inputs{{in, in_dtype_, role_.inputs[0].concrete(b)}};
  net_.run(inputs, b, out, size_t(b) * out_elems_);
  stats.network_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void DecoderStage::decode_codes(const int64_t *codes, uint32_t n, uint32_t batch, float *out, edgegen_stats &stats) {
  if (!takes_codes()) fail(EDGEGEN_ERR_UNSUPPORTED, "this bundle's decoder takes latents, not codes");
  for (uint32_t s = 0; s < n; s += batch) {
    const uint32_t b = std::min(batch, n - s);
    const int64_t *c = codes + size_t(s) * in_elems_;
    const void *in = c;
    if (in_dtype_ == DType::I32) {
      i32_.assign(c, c + size_t(b) * in_elems_);
      in = i32_.data();
    }
    call(in, b, out + size_t(s) * out_elems_, stats);
  }
}

void DecoderStage::decode_latents(const float *z, uint32_t n, uint32_t batch, float *out, edgegen_stats &stats) {
  if (takes_codes()) fail(EDGEGEN_ERR_UNSUPPORTED, "this bundle's decoder takes codes, not latents");
  for (uint32_t s = 0; s < n; s += batch) {
    const uint32_t b = std::min(batch, n - s);
    const float *x = z + size_t(s) * in_elems_;
    if (scaled_) {
      f32_.resize(size_t(b) * in_elems_);
      for (size_t i = 0; i < f32_.size(); ++i) f32_[i] = x[i] * inv_scale_;
      x = f32_.data();
    }
    call(x, b, out + size_t(s) * out_elems_, stats);
  }
}

EncoderStage::EncoderStage(const Manifest &m, const json &stage, Network &net)
    : role_(m.role(stage.at("role").get<std::string>())), net_(net) {
  const std::string name = stage.at("role").get<std::string>();
  if (role_.inputs.size() != 1) fail(EDGEGEN_ERR_UNSUPPORTED, "the encoder role '" + name + "' must take one input");
  const TensorSpec &in = role_.inputs[0], &out = role_.outputs[0];
  if (in.has_dynamic() || out.has_dynamic())
    fail(EDGEGEN_ERR_MALFORMED, "the encoder role '" + name + "' has a dynamic dim other than the batch");
  if (stage.contains("input") && stage["input"].get<std::string>() != in.name)
    fail(EDGEGEN_ERR_MALFORMED, "the encoder stage's input '" + stage["input"].get<std::string>() + "' is not role '" +
                                    name + "''s input");
  if (stage.contains("output") && stage["output"].get<std::string>() != out.name)
    fail(EDGEGEN_ERR_UNSUPPORTED, "the encoder stage's output must be its role's first output");
  if (out.dtype != DType::F32) fail(EDGEGEN_ERR_UNSUPPORTED, "the encoder's output must be float32");
  in_dtype_ = in.dtype;
  if (in_dtype_ == DType::F16) fail(EDGEGEN_ERR_UNSUPPORTED, "a float16 encoder input is not supported");
  in_elems_ = size_t(in.per_sample_elems());
  out_elems_ = size_t(out.per_sample_elems());
  if (stage.contains("scale") && !stage["scale"].is_null()) {
    scaled_ = true;
    scale_ = float(stage["scale"].get<double>());  // np.float32(scale)
  }
}

void EncoderStage::call(const void *in, uint32_t b, float *out, edgegen_stats &stats) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<HostTensor> inputs{{in, in_dtype_, role_.inputs[0].concrete(b)}};
  net_.run(inputs, b, out, size_t(b) * out_elems_);
  if (scaled_)
    for (size_t i = 0; i < size_t(b) * out_elems_; ++i) out[i] = out[i] * scale_;
  stats.network_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void EncoderStage::encode_ids(const int64_t *ids, size_t n, uint32_t batch, float *out, edgegen_stats &stats) {
  if (!takes_ids()) fail(EDGEGEN_ERR_UNSUPPORTED, "this encoder takes float32 input, not ids");
  for (size_t s = 0; s < n; s += batch) {
    const uint32_t b = uint32_t(std::min<size_t>(batch, n - s));
    const int64_t *c = ids + s * in_elems_;
    const void *in = c;
    if (in_dtype_ == DType::I32) {
      i32_.assign(c, c + size_t(b) * in_elems_);
      in = i32_.data();
    }
    call(in, b, out + s * out_elems_, stats);
  }
}

void EncoderStage::encode_floats(const float *x, size_t n, uint32_t batch, float *out, edgegen_stats &stats) {
  if (takes_ids()) fail(EDGEGEN_ERR_UNSUPPORTED, "this encoder takes ids, not float32 input");
  for (size_t s = 0; s < n; s += batch) {
    const uint32_t b = uint32_t(std::min<size_t>(batch, n - s));
    call(x + s * in_elems_, b, out + s * out_elems_, stats);
  }
}

}  // namespace edgegen
