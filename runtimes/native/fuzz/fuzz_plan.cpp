// libFuzzer harness: edgegen_sample_params.plan_json text -> the plan parser and validator.
#include <string>

#include "error.hpp"
#include "plan.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  try {
    edgegen::parse_plan_text(text, {1, 16, 16});
  } catch (const edgegen::Error &) {
  }
  return 0;
}
