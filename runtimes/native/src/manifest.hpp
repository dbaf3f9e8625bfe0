// The bundle manifest (edgegen/manifest.py is the schema): the only thing the runtime reads.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace edgegen {

using json = nlohmann::json;

enum class DType { F32, F16, I64, I32 };
DType parse_dtype(const std::string &name);
size_t dtype_size(DType d);

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // -1 marks the dynamic "batch" dimension
  DType dtype;
  std::vector<int64_t> concrete(int64_t batch) const;
  int64_t per_sample_elems() const;  // product of the non-batch dims
};

struct FileEntry {
  std::string path;  // relative to the bundle root
  std::string sha256;
  std::vector<FileEntry> companions;
  std::string calibration_cache;  // tensorrt int8 entries: the calibration cache (bundle-relative), if any
};

struct RoleSpec {
  std::vector<TensorSpec> inputs, outputs;
  std::string time_input, label_input;  // from meta; empty when the role has none
  std::map<std::string, std::map<std::string, FileEntry>> files;  // format -> precision -> file
};

struct Manifest {
  std::string root;
  std::string family;
  std::vector<int64_t> sample_shape;
  int64_t num_classes = 0;
  double range[2] = {-1.0, 1.0};
  std::optional<int64_t> null_label;
  std::map<std::string, RoleSpec> roles;
  std::string sampling_role;
  json sampling;  // process, schedule, defaults, samplers
  json plans;     // key -> edgegen.plan/1

  const RoleSpec &role(const std::string &name) const;
  // Absolute path of a role's file in a format and precision; Error(UNSUPPORTED) when absent.
  std::string file(const std::string &role, const std::string &format, const std::string &precision) const;
  // Every listed file exists and matches its sha256, else Error(NOT_FOUND / INTEGRITY).
  void verify_files() const;
};

// Reads root/manifest.json; Error(NOT_FOUND) for a missing folder or manifest,
// Error(MALFORMED) for invalid JSON or schema.
Manifest read_manifest(const std::string &root, bool verify);

}  // namespace edgegen
