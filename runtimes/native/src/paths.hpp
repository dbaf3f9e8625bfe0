// Checks on a bundle from a stranger (edgegen/bundle_paths.py is the Python twin; SECURITY.md):
// containment of every path a manifest names, size limits, and the trust switch for formats
// that are code (AOTInductor packages, TensorRT engines and plugins).
#pragma once
#include <string>

#include "manifest.hpp"

namespace edgegen {

constexpr int64_t MAX_DIM = int64_t(1) << 24;           // one tensor dimension
constexpr int64_t MAX_SAMPLE_ELEMS = int64_t(1) << 28;  // float32 elements of one sample (1 GiB)
constexpr size_t MAX_MANIFEST_BYTES = size_t(64) << 20;

// Limits and containment of a parsed manifest.json, before any file it lists is opened (except
// ONNX files, scanned for external-data locations). Error(MALFORMED) names the entry's JSON path.
void check_bundle(const std::string &root, const json &data, const std::string &where);

// One bundle-relative path: relative, no "..", inside root after symlinks. Error(MALFORMED).
void check_contained(const std::string &root, const std::string &rel, const std::string &where);

// Every external-data "location" in an ONNX protobuf (a minimal wire-format scan, no ONNX library).
std::vector<std::string> onnx_external_locations(const unsigned char *data, size_t size);

// Formats that are code load only with trust_code or when their sha256 is in the allow-list
// ($EDGEGEN_TRUSTED_CODE, else $XDG_CONFIG_HOME or ~/.config /edgegen/trusted-code.sha256).
// Error(UNSUPPORTED) with the reason otherwise.
void check_code_trust(const Manifest &m, const std::string &role, const std::string &backend,
                      const std::string &precision, bool trust_code);

}  // namespace edgegen
