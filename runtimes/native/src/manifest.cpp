#include "manifest.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "paths.hpp"
#include "sha256.hpp"

namespace fs = std::filesystem;

namespace edgegen {

// Version 2 (edgegen/manifest.py) moved version 1's "sampling" section to "pipeline.generator";
// both are read, the generator section is what the runtime uses.
constexpr int SCHEMA_VERSION_MIN = 1;
constexpr int SCHEMA_VERSION_MAX = 2;

DType parse_dtype(const std::string &name) {
  if (name == "float32") return DType::F32;
  if (name == "float16") return DType::F16;
  if (name == "int64") return DType::I64;
  if (name == "int32") return DType::I32;
  fail(EDGEGEN_ERR_MALFORMED, "unknown dtype '" + name + "' in manifest");
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: case DType::I32: return 4;
    case DType::F16: return 2;
    case DType::I64: return 8;
  }
  return 0;
}

std::vector<int64_t> TensorSpec::concrete(int64_t batch) const {
  std::vector<int64_t> out(shape);
  for (auto &d : out)
    if (d == DIM_BATCH) d = batch;
  return out;
}

bool TensorSpec::has_dynamic() const {
  return std::find(shape.begin(), shape.end(), DIM_DYNAMIC) != shape.end();
}

int64_t TensorSpec::per_sample_elems() const {
  if (has_dynamic()) return -1;
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

namespace {

TensorSpec parse_tensor(const json &j) {
  TensorSpec t;
  t.name = j.at("name").get<std::string>();
  for (const auto &d : j.at("shape")) {
    if (d.is_string()) {  // "batch", or another named dynamic dim (roles.py: a KV cache's "seq", "past")
      const std::string dim = d.get<std::string>();
      if (dim.empty()) fail(EDGEGEN_ERR_MALFORMED, "tensor '" + t.name + "': empty dim name");
      t.shape.push_back(dim == "batch" ? DIM_BATCH : DIM_DYNAMIC);
    } else {
      t.shape.push_back(d.get<int64_t>());
    }
  }
  t.dtype = parse_dtype(j.at("dtype").get<std::string>());
  return t;
}

FileEntry parse_file(const json &j) {
  FileEntry f{j.at("path").get<std::string>(), j.at("sha256").get<std::string>(), {}, {}, {}};
  if (j.contains("companions"))
    for (const auto &c : j.at("companions")) f.companions.push_back(parse_file(c));
  if (j.contains("calibration_cache") && j["calibration_cache"].is_string())
    f.calibration_cache = j["calibration_cache"].get<std::string>();
  f.raw = j;
  return f;
}

RoleSpec parse_role(const json &j) {
  RoleSpec r;
  for (const auto &t : j.at("inputs")) r.inputs.push_back(parse_tensor(t));
  for (const auto &t : j.at("outputs")) r.outputs.push_back(parse_tensor(t));
  if (r.outputs.empty()) fail(EDGEGEN_ERR_MALFORMED, "a role has no outputs");
  const json meta = j.value("meta", json::object());
  if (meta.contains("time_input") && !meta["time_input"].is_null()) r.time_input = meta["time_input"].get<std::string>();
  if (meta.contains("label_input") && !meta["label_input"].is_null()) r.label_input = meta["label_input"].get<std::string>();
  if (meta.contains("context_input") && meta["context_input"].is_string())
    r.context_input = meta["context_input"].get<std::string>();
  if (meta.contains("token_input") && meta["token_input"].is_string()) r.token_input = meta["token_input"].get<std::string>();
  for (auto [key, field] : {std::pair<const char *, int64_t *>{"vocab_in", &r.vocab_in}, {"block_size", &r.block_size},
                            {"codebook_size", &r.codebook_size}})
    if (meta.contains(key) && meta[key].is_number_integer()) *field = meta[key].get<int64_t>();
  for (const auto &[fmt, per_prec] : j.at("files").items())
    for (const auto &[prec, entry] : per_prec.items()) r.files[fmt][prec] = parse_file(entry);
  return r;
}

void verify_entry(const std::string &root, const FileEntry &e) {
  const std::string p = (fs::path(root) / e.path).string();
  if (!fs::is_regular_file(p)) fail(EDGEGEN_ERR_NOT_FOUND, "bundle file missing: " + p);
  if (sha256_file(p) != e.sha256)
    fail(EDGEGEN_ERR_INTEGRITY, "sha256 mismatch for " + p + ": the file was changed or corrupted");
  for (const auto &c : e.companions) verify_entry(root, c);
}

// edgegen/manifest.py pipeline_from_sampling: version 1's one "sampling" section -> the stages.
void migrate_v1(const json &sampling, Manifest &m) {
  json s = sampling;
  if (s.value("kind", std::string()) == "tokens") {
    if (s.value("condition", std::string("label")) == "text")
      m.condition = {{"kind", "prompt"}, {"tokenizer", s.at("tokenizer")},
                     {"label_prompts", s.value("label_prompts", json::array())}};
    else
      m.condition = {{"kind", "label_token"}, {"offset", s.at("label_token_offset")}};
    m.decoder = {{"role", s.at("decoder")}, {"input", "codes"}, {"output", "x"}};
  } else {
    m.condition = {{"kind", m.num_classes > 0 ? "label" : "none"}};
    m.decoder = json();
  }
  m.sampling = s;
}

}  // namespace

const RoleSpec &Manifest::role(const std::string &name) const {
  auto it = roles.find(name);
  if (it == roles.end()) fail(EDGEGEN_ERR_MALFORMED, "bundle " + root + " has no role '" + name + "'");
  return it->second;
}

std::string Manifest::file(const std::string &role_name, const std::string &format, const std::string &precision) const {
  const RoleSpec &r = role(role_name);
  auto f = r.files.find(format);
  if (f == r.files.end())
    fail(EDGEGEN_ERR_UNSUPPORTED, "bundle " + root + " has no " + format + " export of '" + role_name + "'");
  auto p = f->second.find(precision);
  if (p == f->second.end())
    fail(EDGEGEN_ERR_UNSUPPORTED, "bundle " + root + " has no " + precision + " " + format + " export of '" + role_name + "'");
  return (fs::path(root) / p->second.path).string();
}

void Manifest::verify_files() const {
  for (const auto &[name, r] : roles)
    for (const auto &[fmt, per_prec] : r.files)
      for (const auto &[prec, entry] : per_prec) verify_entry(root, entry);
  for (const auto &[name, entry] : side_files.items())  // the tokenizer of prompt models
    if (entry.is_object() && entry.contains("path") && entry.contains("sha256")) verify_entry(root, parse_file(entry));
}

Manifest read_manifest(const std::string &root, bool verify) {
  std::error_code ec;
  if (!fs::exists(root, ec)) fail(EDGEGEN_ERR_NOT_FOUND, "bundle not found: " + root);
  const std::string path = (fs::path(root) / "manifest.json").string();
  if (!fs::is_regular_file(path, ec)) fail(EDGEGEN_ERR_NOT_FOUND, root + " is not a bundle (no manifest.json)");
  if (fs::file_size(path, ec) > MAX_MANIFEST_BYTES) fail(EDGEGEN_ERR_MALFORMED, path + " is larger than 64 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(EDGEGEN_ERR_NOT_FOUND, "could not read " + path);
  std::stringstream text;
  text << in.rdbuf();
  json data;
  try {
    data = json::parse(text.str());
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, "malformed " + path + ": " + e.what());
  }
  if (!data.is_object() || !data.contains("schema_version") || !data["schema_version"].is_number_integer() ||
      data["schema_version"].get<int>() < SCHEMA_VERSION_MIN || data["schema_version"].get<int>() > SCHEMA_VERSION_MAX)
    fail(EDGEGEN_ERR_MALFORMED, path + ": unsupported schema_version (this runtime reads 1 and 2)");
  const int version = data["schema_version"].get<int>();
  check_bundle(root, data, path);  // limits and path containment, before any listed file is opened (paths.hpp)
  Manifest m;
  m.root = root;
  try {
    for (const char *key : {"family", "data", "roles", version == 1 ? "sampling" : "pipeline"})
      if (!data.contains(key)) fail(EDGEGEN_ERR_MALFORMED, path + ": missing '" + key + "'");
    m.family = data["family"].get<std::string>();
    const json &d = data["data"];
    m.sample_shape = d.at("shape").get<std::vector<int64_t>>();
    m.num_classes = d.value("num_classes", int64_t{0});
    if (d.contains("range") && !d["range"].is_null()) {  // null: point data sets (moons) have no range
      const auto r = d["range"].get<std::vector<double>>();
      if (r.size() != 2 || !(r[0] < r[1])) fail(EDGEGEN_ERR_MALFORMED, path + ": data.range must be [lo, hi]");
      m.range[0] = r[0];
      m.range[1] = r[1];
    }
    if (d.contains("null_label") && !d["null_label"].is_null()) m.null_label = d["null_label"].get<int64_t>();
    for (const auto &[name, r] : data["roles"].items()) m.roles[name] = parse_role(r);
    if (version == 1) {
      migrate_v1(data["sampling"], m);
    } else {
      const json &p = data["pipeline"];
      m.sampling = p.at("generator");
      m.condition = p.value("condition", json{{"kind", m.num_classes > 0 ? "label" : "none"}});
      m.decoder = p.contains("decoder") ? p["decoder"] : json();
      m.encoder = p.contains("encoder") ? p["encoder"] : json();
    }
    m.side_files = data.value("files", json::object());
    m.sampling_role = m.sampling.at("role").get<std::string>();
    m.plans = data.value("plans", json::object());
    m.role(m.sampling_role);  // must exist
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, "malformed " + path + ": " + e.what());
  }
  for (int64_t dim : m.sample_shape)
    if (dim <= 0) fail(EDGEGEN_ERR_MALFORMED, path + ": data.shape must be positive");
  if (verify) m.verify_files();
  return m;
}

}  // namespace edgegen
