// libFuzzer harness: manifest.json bytes -> read_manifest (limits, containment, schema checks),
// then every stored plan through the plan parser and the stored-plan selection. Any exception other
// than edgegen::Error (a one-line refusal) escapes and is a finding, as are sanitizer reports.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "error.hpp"
#include "manifest.hpp"
#include "plan.hpp"

namespace {
std::string bundle_dir() {
  static std::string dir = [] {
    char tmpl[] = "/tmp/edgegen-fuzz-XXXXXX";
    const char *d = mkdtemp(tmpl);
    if (!d) std::abort();
    return std::string(d);
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string dir = bundle_dir();
  FILE *f = std::fopen((dir + "/manifest.json").c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    edgegen::Manifest m = edgegen::read_manifest(dir, false);
    for (const auto &[key, plan] : m.plans.items()) {
      try {
        edgegen::parse_plan(plan, m.sample_shape);
      } catch (const edgegen::Error &) {
      }
    }
    try {
      edgegen::parse_plan(edgegen::select_stored_plan(m, "", 0, 0.0), m.sample_shape);
    } catch (const edgegen::Error &) {
    }
  } catch (const edgegen::Error &) {
  }
  return 0;
}
