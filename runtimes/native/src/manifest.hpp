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

constexpr int64_t DIM_BATCH = -1;    // the dynamic "batch" dimension
constexpr int64_t DIM_DYNAMIC = -2;  // any other named dynamic dimension ("seq", "past" of a KV cache)

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // DIM_BATCH, DIM_DYNAMIC or a fixed size
  DType dtype;
  std::vector<int64_t> concrete(int64_t batch) const;  // the batch filled in; DIM_DYNAMIC stays
  bool has_dynamic() const;                            // a dim other than the batch is dynamic
  int64_t per_sample_elems() const;  // product of the non-batch dims (-1 when one is dynamic)
};

struct FileEntry {
  std::string path;  // relative to the bundle root
  std::string sha256;
  std::vector<FileEntry> companions;
  std::string calibration_cache;  // tensorrt int8 entries: the calibration cache (bundle-relative), if any
  json raw;  // the whole manifest entry: backend-specific keys (executorch: max_batch, static_batches, requires)
};

struct RoleSpec {
  std::vector<TensorSpec> inputs, outputs;
  std::string time_input, label_input;  // from meta; empty when the role has none
  std::string context_input;            // context models' denoiser: meta.context_input (the text embedding)
  std::string token_input;              // token models' step role: meta.token_input
  int64_t vocab_in = 0;                 // its input vocabulary (meta.vocab_in; 0 = unknown)
  int64_t block_size = 0;               // its longest sequence (meta.block_size; 0 = unknown)
  int64_t codebook_size = 0;            // a VQ decoder's codebook (meta.codebook_size; 0 = unknown)
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
  json sampling;  // the generator stage: kind (plan, tokens), role, process, schedule, defaults, ...
  json condition;  // the condition stage: kind none, label, label_token (offset) or prompt (tokenizer)
  json decoder;    // the decoder stage (role, input, output, optional scale); null when none
  json encoder;    // the image encoder stage of latent models (role, input, output, scale); null when none
  json plans;      // key -> edgegen.plan/1
  json side_files;  // name -> {path, sha256} (the tokenizer); contained and hashed like role files

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
