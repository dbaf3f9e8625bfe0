#include "sha256.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "error.hpp"

namespace edgegen {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX *c) const { EVP_MD_CTX_free(c); }
};
struct FileClose {
  void operator()(FILE *f) const { std::fclose(f); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

MdCtx new_ctx() {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    fail(EDGEGEN_ERR_RUNTIME, "OpenSSL could not start a sha256 digest");
  return ctx;
}

std::string finish(EVP_MD_CTX *ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, md, &len) != 1) fail(EDGEGEN_ERR_RUNTIME, "OpenSSL sha256 failed");
  static const char *hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

}  // namespace

std::string sha256_hex(const void *data, size_t size) {
  MdCtx ctx = new_ctx();
  if (EVP_DigestUpdate(ctx.get(), data, size) != 1) fail(EDGEGEN_ERR_RUNTIME, "OpenSSL sha256 failed");
  return finish(ctx.get());
}

std::string sha256_file(const std::string &path) {
  std::unique_ptr<FILE, FileClose> f(std::fopen(path.c_str(), "rb"));
  if (!f) fail(EDGEGEN_ERR_NOT_FOUND, "bundle file missing: " + path);
  MdCtx ctx = new_ctx();
  std::vector<unsigned char> buf(1 << 20);
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), f.get())) > 0)
    if (EVP_DigestUpdate(ctx.get(), buf.data(), got) != 1) fail(EDGEGEN_ERR_RUNTIME, "OpenSSL sha256 failed");
  if (std::ferror(f.get())) fail(EDGEGEN_ERR_NOT_FOUND, "could not read " + path);
  return finish(ctx.get());
}

}  // namespace edgegen
