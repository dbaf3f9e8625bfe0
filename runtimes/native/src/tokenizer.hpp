// Prompt text -> token ids in C++ (issue 17): the bundle's tokenizer converted to an OpenVINO model
// by openvino-tokenizers at export (export/tokenizer_export.py: tokenizer.xml + .bin, listed with
// sha256), run by OpenVINO with the package's extension library libopenvino_tokenizers.so, as
// openvino.genai tokenizes. Around the model's raw ids, runtimes/text.py's rules: an empty prompt,
// characters the tokenizer does not know and prompts longer than the text length are refused with
// Python's messages; the ids are right-padded with the pad id to the text length.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "manifest.hpp"

namespace edgegen {

// The extension library: $EDGEGEN_OV_TOKENIZERS, else the path CMake recorded at configure time
// (openvino_tokenizers/lib in the venv), else "" (then loading a tokenizer fails in one line).
std::string tokenizers_library();

// True when s (UTF-8) is one code point (a vocabulary entry that is a known character).
bool single_codepoint(const std::string &s, char32_t &cp);

class Tokenizer {
 public:
  // `model`: the bundle-relative tokenizer.xml (its .bin beside it); both must be listed in the
  // manifest's files. The model is read and compiled on first use (a bundle sampled with token ids
  // never needs the extension library). Thread-safe: calls are serialized by a lock.
  Tokenizer(const Manifest &m, std::string model, int64_t text_length, int64_t pad_id, int64_t unk_id,
            std::u32string alphabet);
  ~Tokenizer();
  // One prompt (UTF-8) -> text_length ids, right-padded; Error(INVALID_ARGUMENT) for bad prompts.
  std::vector<int64_t> encode(const std::string &text) const;
  // The same, also giving the number of ids before the padding.
  std::vector<int64_t> encode(const std::string &text, size_t &used) const;

 private:
  struct Impl;
  std::vector<int64_t> raw(const std::string &text) const;  // the model's ids, no rules applied
  std::string root_, model_;
  int64_t text_length_, pad_id_, unk_id_;
  std::u32string alphabet_;  // single-character tokens (known characters), sorted
  mutable std::mutex mu_;
  mutable std::unique_ptr<Impl> impl_;  // null until the first call
};

}  // namespace edgegen
