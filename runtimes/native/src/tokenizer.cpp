#include "tokenizer.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <openvino/openvino.hpp>
#include <set>

#include "error.hpp"

#ifndef EDGEGEN_OV_TOKENIZERS_DEFAULT
#define EDGEGEN_OV_TOKENIZERS_DEFAULT ""
#endif

namespace fs = std::filesystem;

namespace edgegen {

namespace {

// Python's str.isspace() code points: text.py's empty-prompt test (`not prompt.strip()`).
bool py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// UTF-8 -> code points; Error(INVALID_ARGUMENT) on a malformed sequence (Python strings cannot hold one).
std::u32string decode_utf8(const std::string &s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size())
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt is not valid UTF-8 (at byte " + std::to_string(i) + ")");
    char32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2)
        fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt is not valid UTF-8 (at byte " + std::to_string(i + k) + ")");
      cp = (cp << 6) | (d & 0x3F);
    }
    static const char32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt is not valid UTF-8 (at byte " + std::to_string(i) + ")");
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

void append_utf8(std::string &out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

// Python's repr() of a str, for the messages text.py writes (printable: an approximation of
// str.isprintable, exact for ASCII and Latin-1).
bool py_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F)) return false;
  if (c == 0x1680 || c == 0x3000 || c == 0xFEFF || (c >= 0xD800 && c <= 0xDFFF) || (c >= 0xE000 && c <= 0xF8FF)) return false;
  return true;
}

std::string py_repr(const std::u32string &s) {
  const bool has_single = s.find(U'\'') != std::u32string::npos, has_double = s.find(U'"') != std::u32string::npos;
  const char q = has_single && !has_double ? '"' : '\'';
  std::string out(1, q);
  for (char32_t c : s) {
    char buf[16];
    if (c == U'\\') out += "\\\\";
    else if (c == char32_t(q)) (out += '\\') += q;
    else if (c == U'\n') out += "\\n";
    else if (c == U'\r') out += "\\r";
    else if (c == U'\t') out += "\\t";
    else if (py_printable(c)) append_utf8(out, c);
    else {
      std::snprintf(buf, sizeof buf, c < 0x100 ? "\\x%02x" : c < 0x10000 ? "\\u%04x" : "\\U%08x", unsigned(c));
      out += buf;
    }
  }
  return out + q;
}

// Both files of the model must be listed in the manifest (contained, hashed at load).
void require_listed(const Manifest &m, const std::string &rel) {
  for (const auto &[name, entry] : m.side_files.items())
    if (entry.is_object() && entry.value("path", std::string()) == rel) return;
  fail(EDGEGEN_ERR_MALFORMED, "the prompt stage's tokenizer model '" + rel + "' is not listed in the manifest's files");
}

}  // namespace

bool single_codepoint(const std::string &s, char32_t &cp) {
  try {
    const std::u32string u = decode_utf8(s);
    if (u.size() != 1) return false;
    cp = u[0];
    return true;
  } catch (const Error &) {
    return false;
  }
}

std::string tokenizers_library() {
  const char *env = std::getenv("EDGEGEN_OV_TOKENIZERS");
  if (env && *env) return env;
  return EDGEGEN_OV_TOKENIZERS_DEFAULT;
}

struct Tokenizer::Impl {
  ov::Core core;
  ov::CompiledModel compiled;
  ov::InferRequest request;
};

Tokenizer::Tokenizer(const Manifest &m, std::string model, int64_t text_length, int64_t pad_id, int64_t unk_id,
                     std::u32string alphabet)
    : root_(m.root), model_(std::move(model)), text_length_(text_length), pad_id_(pad_id), unk_id_(unk_id),
      alphabet_(std::move(alphabet)) {
  std::sort(alphabet_.begin(), alphabet_.end());
  require_listed(m, model_);
  require_listed(m, fs::path(model_).replace_extension(".bin").string());
}

Tokenizer::~Tokenizer() = default;

std::vector<int64_t> Tokenizer::raw(const std::string &text) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!impl_) {
    const std::string lib = tokenizers_library();
    std::error_code ec;
    if (lib.empty() || !fs::is_regular_file(lib, ec))
      fail(EDGEGEN_ERR_UNSUPPORTED, "the OpenVINO tokenizers extension library was not found" +
                                        (lib.empty() ? std::string() : " at " + lib) +
                                        ": set EDGEGEN_OV_TOKENIZERS to libopenvino_tokenizers.so of the openvino-tokenizers "
                                        "package that matches OpenVINO " + ov::get_openvino_version().buildNumber);
    // The extension keeps one-time globals (its static initializers, a pthread_once in an op): loaded
    // once for the process (RTLD_NODELETE), they stay reachable instead of leaking when a Core that
    // loaded it is destroyed and OpenVINO dlcloses it (valgrind and LeakSanitizer saw them lost).
    static std::mutex keep_mu;
    {
      std::lock_guard<std::mutex> keep_lock(keep_mu);
      static std::set<std::string> kept;
      if (!kept.count(lib) && dlopen(lib.c_str(), RTLD_NOW | RTLD_NODELETE)) kept.insert(lib);
    }
    auto impl = std::make_unique<Impl>();
    try {
      impl->core.add_extension(lib);
    } catch (const std::exception &e) {
      std::string why = e.what();
      why = why.substr(0, why.find('\n'));
      fail(EDGEGEN_ERR_UNSUPPORTED, "cannot load the OpenVINO tokenizers extension " + lib + ": " + why);
    }
    const std::string xml = (fs::path(root_) / model_).string();
    try {
      impl->compiled = impl->core.compile_model(impl->core.read_model(xml), "CPU", ov::inference_num_threads(1));
      impl->request = impl->compiled.create_infer_request();
    } catch (const std::exception &e) {
      std::string why = e.what();
      why = why.substr(0, why.find('\n'));
      fail(EDGEGEN_ERR_MALFORMED, "cannot load the tokenizer model " + xml + ": " + why);
    }
    impl_ = std::move(impl);
  }
  ov::Tensor in(ov::element::string, ov::Shape{1});
  in.data<std::string>()[0] = text;
  try {
    impl_->request.set_input_tensor(0, in);
    impl_->request.infer();
    const ov::Tensor ids = impl_->request.get_tensor("input_ids");
    const ov::Tensor mask = impl_->request.get_tensor("attention_mask");
    const size_t len = ids.get_shape().size() == 2 ? ids.get_shape()[1] : 0;
    std::vector<int64_t> out;
    for (size_t i = 0; i < len; ++i)
      if (mask.data<const int64_t>()[i] == 1) out.push_back(ids.data<const int64_t>()[i]);
    return out;
  } catch (const std::exception &e) {
    std::string why = e.what();
    fail(EDGEGEN_ERR_RUNTIME, "the tokenizer model failed: " + why.substr(0, why.find('\n')));
  }
}

std::vector<int64_t> Tokenizer::encode(const std::string &text) const {
  size_t used = 0;
  return encode(text, used);
}

// runtimes/text.py TextEncoder.encode, checked against it on a corpus at export
// (export/tokenizer_export.py finish) and in tests/native/test_native_tokenizer.py.
std::vector<int64_t> Tokenizer::encode(const std::string &text, size_t &used) const {
  const std::u32string cps = decode_utf8(text);
  if (std::all_of(cps.begin(), cps.end(), py_space))
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt is empty: describe the image, e.g. \"a handwritten seven\"");
  const std::vector<int64_t> ids = raw(text);
  const bool nul = text.find('\0') != std::string::npos;  // a C caller cannot pass one; std::string can
  if (nul || std::find(ids.begin(), ids.end(), unk_id_) != ids.end()) {
    // Name the characters: each distinct one that is not a space, tokenized alone, gives [UNK].
    // (Python names them after normalization, NFKC and lower case; these are as written.)
    std::set<char32_t> distinct(cps.begin(), cps.end());
    std::u32string unknown;
    for (char32_t c : distinct) {
      if (c == 0) {
        unknown.push_back(c);
        continue;
      }
      if (py_space(c) && !(c >= 0x1C && c <= 0x1F)) continue;
      std::string one;
      append_utf8(one, c);
      const std::vector<int64_t> r = raw(one);
      if (std::find(r.begin(), r.end(), unk_id_) != r.end()) unknown.push_back(c);
    }
    std::string shown;
    if (unknown.empty()) shown = py_repr(cps);  // only in context (normalization joined characters)
    for (size_t i = 0; i < unknown.size() && i < 10; ++i) shown += (i ? ", " : "") + py_repr(std::u32string(1, unknown[i]));
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt has characters the tokenizer does not know: " + shown + " (known: " +
                                           py_repr(alphabet_) + " and spaces)");
  }
  if (int64_t(ids.size()) > text_length_)
    fail(EDGEGEN_ERR_INVALID_ARGUMENT, "the prompt is " + std::to_string(ids.size()) + " tokens long, more than this model's "
                                           "text length " + std::to_string(text_length_) +
                                           "; shorten it (prompts are rejected, not truncated)");
  std::vector<int64_t> out(size_t(text_length_), pad_id_);
  std::copy(ids.begin(), ids.end(), out.begin());
  used = ids.size();
  return out;
}

}  // namespace edgegen
