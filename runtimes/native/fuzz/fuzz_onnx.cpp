// libFuzzer harness: the ONNX protobuf scan for external-data locations (paths.cpp).
#include "error.hpp"
#include "paths.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    edgegen::onnx_external_locations(data, size);
  } catch (const edgegen::Error &) {
  }
  return 0;
}
