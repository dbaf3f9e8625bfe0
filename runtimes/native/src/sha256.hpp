// sha256 of a file (OpenSSL EVP), as lowercase hex.
#pragma once
#include <string>

namespace edgegen {

// Throws Error(NOT_FOUND) when the file cannot be opened.
std::string sha256_file(const std::string &path);
std::string sha256_hex(const void *data, size_t size);

}  // namespace edgegen
