// Containment, limits and code trust for bundles (paths.hpp). Mirrors edgegen/bundle_paths.py
// and edgegen/trust.py; tests/security runs the same bad bundles through both.
#include "paths.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "error.hpp"
#include "sha256.hpp"

namespace fs = std::filesystem;

namespace edgegen {
namespace {

const char *const PATH_KEYS[] = {"path", "calibration_cache", "file", "package", "engine", "plugins", "plugin"};
const char *const CALIBRATION_KEYS[] = {"artifact", "histograms", "inputs", "tensorrt_cache", "report"};

bool is_path_key(const std::string &k) {
  for (const char *p : PATH_KEYS)
    if (k == p) return true;
  return false;
}

bool is_identifier(const std::string &s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

std::string child(const std::string &parent, const std::string &key) {
  return is_identifier(key) ? parent + "." + key : parent + "[" + json(key).dump() + "]";
}
std::string child(const std::string &parent, size_t i) { return parent + "[" + std::to_string(i) + "]"; }

// A value for an error message; structured values by type only (dumping them could recurse deeply).
std::string brief(const json &j) { return j.is_structured() ? std::string(j.type_name()) : j.dump().substr(0, 60); }

[[noreturn]] void bad(const std::string &where, const std::string &msg) { fail(EDGEGEN_ERR_MALFORMED, where + ": " + msg); }

struct PathRef {
  std::string json_path, rel;
};

void walk(const json &x, const std::string &jp, bool in_static, std::vector<PathRef> &out, int depth) {
  if (depth > 64) bad(jp, "nested too deeply");
  if (x.is_object()) {
    for (const auto &[k, v] : x.items()) {
      if (v.is_string() && (is_path_key(k) || in_static)) {
        out.push_back({child(jp, k), v.get<std::string>()});
      } else if (v.is_array() && k == "plugins") {
        for (size_t i = 0; i < v.size(); ++i)
          if (v[i].is_string()) out.push_back({child(child(jp, k), i), v[i].get<std::string>()});
      } else {
        walk(v, child(jp, k), in_static || k == "static_batches", out, depth + 1);
      }
    }
  } else if (x.is_array()) {
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i].is_string() && in_static) out.push_back({child(jp, i), x[i].get<std::string>()});
      else walk(x[i], child(jp, i), in_static, out, depth + 1);
    }
  }
}

std::vector<PathRef> manifest_paths(const json &data) {
  std::vector<PathRef> out;
  if (data.contains("roles") && data["roles"].is_object())
    for (const auto &[name, role] : data["roles"].items())
      if (role.is_object() && role.contains("files")) walk(role["files"], child(child("$.roles", name), "files"), false, out, 0);
  if (data.contains("files")) walk(data["files"], "$.files", false, out, 0);
  if (data.contains("calibration") && data["calibration"].is_object())
    for (const char *k : CALIBRATION_KEYS)
      if (data["calibration"].contains(k) && data["calibration"][k].is_string())
        out.push_back({std::string("$.calibration.") + k, data["calibration"][k].get<std::string>()});
  if (data.contains("verify") && data["verify"].is_string()) out.push_back({"$.verify", data["verify"].get<std::string>()});
  auto tokenizer = [&](const json &stage, const std::string &jp) {
    if (stage.is_object() && stage.contains("tokenizer") && stage["tokenizer"].is_object() &&
        stage["tokenizer"].contains("file") && stage["tokenizer"]["file"].is_string())
      out.push_back({jp + ".tokenizer.file", stage["tokenizer"]["file"].get<std::string>()});
  };
  if (data.contains("pipeline") && data["pipeline"].is_object() && data["pipeline"].contains("condition"))
    tokenizer(data["pipeline"]["condition"], "$.pipeline.condition");
  if (data.contains("sampling")) tokenizer(data["sampling"], "$.sampling");
  return out;
}

bool inside(const fs::path &real, const fs::path &root_real) {
  auto r = root_real.begin(), p = real.begin();
  for (; r != root_real.end(); ++r, ++p)
    if (p == real.end() || *p != *r) return false;
  return true;
}

fs::path real_path(const fs::path &p) {
  std::error_code ec;
  fs::path out = fs::weakly_canonical(p, ec);
  if (ec) fail(EDGEGEN_ERR_MALFORMED, "cannot resolve " + p.string() + ": " + ec.message());
  return out;
}

void check_lexical(const std::string &rel, const std::string &where) {
  if (rel.empty()) bad(where, "a bundle path must be a non-empty string");
  if (rel.size() > 4096) bad(where, "bundle path is too long");
  for (unsigned char c : rel)
    if (c < 0x20 || c == 0x7f) bad(where, "bundle path holds a control character (NUL, newline, ...)");
  if (rel[0] == '/' || rel[0] == '\\' || (rel.size() > 1 && rel[1] == ':'))
    bad(where, "absolute path '" + rel.substr(0, 200) + "' is not allowed (paths are relative to the bundle)");
  if (rel.find('\\') != std::string::npos) bad(where, "path '" + rel.substr(0, 200) + "' leaves the bundle folder ('\\' is not allowed)");
  for (const auto &part : fs::path(rel))
    if (part == "..") bad(where, "path '" + rel.substr(0, 200) + "' leaves the bundle folder ('..' is not allowed)");
}

// -- ONNX wire format: ModelProto.graph 7, .functions 25; FunctionProto.node 7; GraphProto.node 1,
// .initializer 5, .sparse_initializer 15; NodeProto.attribute 5; AttributeProto t 5, g 6, tensors 10,
// graphs 11, sparse_tensor 22, sparse_tensors 23; SparseTensorProto values 1, indices 2;
// TensorProto.external_data 13 (StringStringEntryProto key 1, value 2).
enum Kind { MODEL, FUNCTION, GRAPH, NODE, ATTR, SPARSE, TENSOR, NONE };

Kind child_kind(Kind k, uint64_t field) {
  switch (k) {
    case MODEL: return field == 7 ? GRAPH : field == 25 ? FUNCTION : NONE;
    case FUNCTION: return field == 7 ? NODE : NONE;
    case GRAPH: return field == 1 ? NODE : (field == 5 ? TENSOR : field == 15 ? SPARSE : NONE);
    case NODE: return field == 5 ? ATTR : NONE;
    case ATTR:
      return (field == 5 || field == 10) ? TENSOR : (field == 6 || field == 11) ? GRAPH : (field == 22 || field == 23) ? SPARSE : NONE;
    case SPARSE: return (field == 1 || field == 2) ? TENSOR : NONE;
    default: return NONE;
  }
}

struct Wire {
  const unsigned char *d;
  uint64_t varint(size_t &i, size_t end) {
    uint64_t r = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (i >= end) throw std::runtime_error("truncated varint");
      const unsigned char b = d[i++];
      r |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return r;
    }
    throw std::runtime_error("varint too long");
  }
  void scan(size_t i, size_t end, Kind kind, std::vector<std::string> &out, int depth) {
    if (depth > 64) throw std::runtime_error("nesting too deep");
    while (i < end) {
      const uint64_t key = varint(i, end);
      const uint64_t field = key >> 3, wt = key & 7;
      if (wt == 0) {
        varint(i, end);
      } else if (wt == 1 || wt == 5) {
        const size_t n = wt == 1 ? 8 : 4;
        if (end - i < n) throw std::runtime_error("fixed field past the end");
        i += n;
      } else if (wt == 2) {
        const uint64_t n = varint(i, end);
        if (n > end - i) throw std::runtime_error("length past the end");
        if (kind == TENSOR && field == 13) {
          std::string k, v;
          size_t j = i;
          bool has_v = false;
          while (j < i + n) {
            const uint64_t key2 = varint(j, i + n);
            if ((key2 & 7) != 2) throw std::runtime_error("bad external_data entry");
            const uint64_t m = varint(j, i + n);
            if (m > i + n - j) throw std::runtime_error("length past the end");
            std::string s(reinterpret_cast<const char *>(d + j), m);
            j += m;
            if ((key2 >> 3) == 1) k = s;
            else if ((key2 >> 3) == 2) { v = s; has_v = true; }
          }
          if (k == "location" && has_v) out.push_back(v);
        } else {
          const Kind c = child_kind(kind, field);
          if (c != NONE) scan(i, i + n, c, out, depth + 1);
        }
        i += n;
      } else {
        throw std::runtime_error("wire type " + std::to_string(wt));
      }
    }
  }
};

std::vector<std::string> onnx_file_locations(const fs::path &p, const std::string &where) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};  // missing files are reported by the sha256 check (NOT_FOUND)
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
    ::close(fd);
    return {};
  }
  void *m = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail(EDGEGEN_ERR_RUNTIME, "cannot map " + p.string());
  std::vector<std::string> out;
  try {
    out = onnx_external_locations(static_cast<const unsigned char *>(m), size_t(st.st_size));
  } catch (...) {
    ::munmap(m, size_t(st.st_size));
    throw;
  }
  ::munmap(m, size_t(st.st_size));
  (void)where;
  return out;
}

int64_t checked_elems(const json &shape, const std::string &where) {
  if (!shape.is_array()) bad(where, "must be an array");
  if (shape.size() > 8) bad(where, "has more than 8 dimensions (limit)");
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const json &d = shape[i];
    if (d.is_string()) {
      if (d.get<std::string>().size() > 64) bad(child(where, i), "dimension name is too long");
      continue;
    }
    if (!d.is_number_integer()) bad(child(where, i), "must be an integer or a dimension name, got " + brief(d));
    const int64_t v = d.get<int64_t>();
    if (v < 0 || v > MAX_DIM) bad(child(where, i), "must be between 0 and " + std::to_string(MAX_DIM) + " (limit), got " + brief(d));
    n *= std::max<int64_t>(v, 1);
    if (n > MAX_SAMPLE_ELEMS) bad(where, "asks for more than " + std::to_string(MAX_SAMPLE_ELEMS) + " elements per sample (limit)");
  }
  return n;
}

void check_plan_sizes(const json &plan, const std::string &where) {
  if (!plan.is_object()) bad(where, "a plan must be an object");
  auto arr = [&](const char *key, size_t limit) {
    if (plan.contains(key) && plan[key].is_array() && plan[key].size() > limit)
      bad(child(where, key), "has more than " + std::to_string(limit) + " items (limit)");
  };
  arr("registers", 64);
  arr("init", 64);
  arr("steps", 100000);
  if (plan.contains("steps") && plan["steps"].is_array())
    for (size_t i = 0; i < plan["steps"].size(); ++i) {
      const json &s = plan["steps"][i];
      if (s.is_object() && s.contains("ops") && s["ops"].is_array() && s["ops"].size() > 64)
        bad(child(child(child(where, "steps"), i), "ops"), "has more than 64 items (limit)");
    }
  if (plan.contains("shapes") && plan["shapes"].is_object())
    for (const auto &[reg, dims] : plan["shapes"].items()) checked_elems(dims, child(child(where, "shapes"), reg));
}

void check_limits(const json &data, const std::string &where) {
  if (data.contains("family") && (!data["family"].is_string() || data["family"].get<std::string>().size() > 256))
    bad(where, "$.family must be a string of at most 256 characters (limit)");
  if (!data.contains("data") || !data["data"].is_object()) bad(where, "$.data must be an object");
  const json &d = data["data"];
  if (!d.contains("shape")) bad(where, "$.data: missing 'shape'");
  if (d["shape"].is_array() && d["shape"].empty()) bad(where, "$.data.shape must have at least 1 items");
  checked_elems(d["shape"], where + ": $.data.shape");
  for (const char *key : {"num_classes", "null_label"})
    if (d.contains(key) && d[key].is_number() && (!d[key].is_number_integer() || d[key].get<int64_t>() < 0 ||
                                                  d[key].get<int64_t>() > 1000000))
      bad(where, std::string("$.data.") + key + " must be an integer between 0 and 1000000 (limit)");
  if (!data.contains("roles") || !data["roles"].is_object()) bad(where, "$.roles must be an object");
  if (data["roles"].size() > 64) bad(where, "$.roles has more than 64 entries (limit)");
  for (const auto &[name, role] : data["roles"].items()) {
    const std::string rp = child("$.roles", name);
    if (!role.is_object()) bad(where, rp + " must be an object");
    for (const char *kind : {"inputs", "outputs"}) {
      if (!role.contains(kind) || !role[kind].is_array()) bad(where, child(rp, kind) + " must be an array");
      if (role[kind].size() > 32) bad(where, child(rp, kind) + " has more than 32 items (limit)");
      for (size_t i = 0; i < role[kind].size(); ++i)
        if (role[kind][i].is_object() && role[kind][i].contains("shape"))
          checked_elems(role[kind][i]["shape"], where + ": " + child(child(child(rp, kind), i), "shape"));
    }
  }
  // the generator section (version 2 pipeline.generator, version 1 sampling): sizes it declares
  const json *gen = nullptr;
  std::string gp;
  if (data.contains("pipeline") && data["pipeline"].is_object() && data["pipeline"].contains("generator")) {
    gen = &data["pipeline"]["generator"];
    gp = "$.pipeline.generator";
  } else if (data.contains("sampling")) {
    gen = &data["sampling"];
    gp = "$.sampling";
  }
  if (gen && gen->is_object()) {
    auto bounded = [&](const json &obj, const char *key, const std::string &jp, bool nullable) {
      if (!obj.is_object() || !obj.contains(key) || (nullable && obj[key].is_null())) return;
      const json &v = obj[key];
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 100000)
        bad(where, child(jp, key) + " must be an integer between 1 and 100000 (limit), got " + brief(v));
    };
    if (gen->contains("defaults")) {
      const json &d = (*gen)["defaults"];
      if (!d.is_object()) bad(where, gp + ".defaults must be an object");
      bounded(d, "steps", gp + ".defaults", true);
      for (const char *key : {"eta", "guidance"})
        if (d.contains(key) && !(d[key].is_number() && std::isfinite(d[key].get<double>()) && std::fabs(d[key].get<double>()) <= 1000))
          bad(where, gp + ".defaults." + key + " must be a number of magnitude at most 1000, got " + brief(d[key]));
    }
    if (gen->contains("schedule")) bounded((*gen)["schedule"], "T", gp + ".schedule", false);
  }
  if (data.contains("plans")) {
    if (!data["plans"].is_object()) bad(where, "$.plans must be an object");
    if (data["plans"].size() > 256) bad(where, "$.plans has more than 256 entries (limit)");
    for (const auto &[key, plan] : data["plans"].items()) check_plan_sizes(plan, where + ": " + child("$.plans", key));
  }
}

std::string allow_list_path() {
  if (const char *e = std::getenv("EDGEGEN_TRUSTED_CODE"); e && *e) return e;
  std::string base;
  if (const char *x = std::getenv("XDG_CONFIG_HOME"); x && *x) base = x;
  else if (const char *h = std::getenv("HOME"); h && *h) base = std::string(h) + "/.config";
  else return "";
  return base + "/edgegen/trusted-code.sha256";
}

std::set<std::string> trusted_hashes() {
  std::set<std::string> out;
  const std::string path = allow_list_path();
  if (path.empty()) return out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const std::string word = line.substr(0, line.find_first_of(" \t#"));
    if (word.size() == 64 && word.find_first_not_of("0123456789abcdef") == std::string::npos) out.insert(word);
  }
  return out;
}

}  // namespace

std::vector<std::string> onnx_external_locations(const unsigned char *data, size_t size) {
  std::vector<std::string> out;
  try {
    Wire{data}.scan(0, size, MODEL, out, 0);
  } catch (const std::runtime_error &e) {
    if (dynamic_cast<const Error *>(&e)) throw;
    fail(EDGEGEN_ERR_MALFORMED, std::string("not a valid ONNX protobuf (") + e.what() + ")");
  }
  return out;
}

void check_contained(const std::string &root, const std::string &rel, const std::string &where) {
  check_lexical(rel, where);
  const fs::path root_real = real_path(fs::absolute(root));
  const fs::path real = real_path(root_real / rel);
  if (!inside(real, root_real))
    bad(where, "'" + rel.substr(0, 200) + "' resolves outside the bundle folder (a symlink leaves it)");
  std::error_code ec;
  if (fs::is_directory(real, ec)) {  // a package folder (Core ML .mlpackage): entries must stay inside
    for (auto it = fs::recursive_directory_iterator(real, fs::directory_options::none, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_symlink(ec) && !inside(real_path(it->path()), root_real))
        bad(where, "'" + fs::relative(it->path(), root_real, ec).string() + "' inside '" + rel.substr(0, 100) +
                       "' is a symlink that leaves the bundle folder");
  }
}

void check_bundle(const std::string &root, const json &data, const std::string &where) {
  try {
    check_limits(data, where);
    const fs::path root_real = real_path(fs::absolute(root));
    for (const PathRef &p : manifest_paths(data)) {
      const std::string w = where + ": " + p.json_path;
      check_contained(root, p.rel, w);
      const fs::path real = real_path(root_real / p.rel);
      std::error_code ec;
      if (real.extension() == ".xml") {  // OpenVINO reads <stem>.bin beside the IR, listed or not
        fs::path bin = real;
        bin.replace_extension(".bin");
        if (fs::is_symlink(bin, ec) && !inside(real_path(bin), root_real))
          bad(w, "the weights '" + bin.filename().string() + "' beside '" + p.rel + "' are a symlink that leaves the bundle folder");
      }
      if (real.extension() == ".onnx" && fs::is_regular_file(real, ec))
        for (const std::string &loc : onnx_file_locations(real, w)) {
          const std::string lw = w + ": ONNX external data";
          check_lexical(loc, lw);
          if (!inside(real_path(real.parent_path() / loc), root_real))
            bad(lw, "'" + loc.substr(0, 200) + "' leaves the bundle folder");
        }
    }
  } catch (const json::exception &e) {
    fail(EDGEGEN_ERR_MALFORMED, where + ": " + e.what());
  }
}

void check_code_trust(const Manifest &m, const std::string &role, const std::string &backend,
                      const std::string &precision, bool trust_code) {
  if (trust_code || (backend != "aoti" && backend != "tensorrt")) return;
  const RoleSpec &r = m.role(role);
  auto f = r.files.find(backend);
  if (f == r.files.end()) return;  // the backend reports the missing export itself
  auto e = f->second.find(precision);
  if (e == f->second.end()) return;
  const std::string &rel = e->second.path;
  if (backend == "tensorrt" && fs::path(rel).extension() == ".onnx") return;  // the engine is built here
  const std::string path = (fs::path(m.root) / rel).string();
  std::error_code ec;
  const std::string digest = fs::is_regular_file(path, ec) ? sha256_file(path) : e->second.sha256;
  if (trusted_hashes().count(digest)) return;
  fail(EDGEGEN_ERR_UNSUPPORTED, std::string("refusing to load the ") + (backend == "aoti" ? "AOTInductor package " : "TensorRT engine ") +
                                    rel + " of role '" + role + "': it is native code this machine did not build (sha256 " +
                                    digest.substr(0, 16) + "...); set edgegen_load_params.trust_code if you trust the bundle's "
                                    "author, or add its sha256 to " + allow_list_path());
}

}  // namespace edgegen
