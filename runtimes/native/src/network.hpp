// What a backend is: one network call on host arrays (design principle 1: it never knows
// the sampler). The interpreter drives it through RoleRunner (interpreter.hpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "manifest.hpp"

namespace edgegen {

struct HostTensor {
  const void *data;
  DType dtype;
  std::vector<int64_t> shape;
};

// An output of a network call whose shape is only known after the call (a KV cache grows).
struct OutTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // float32 outputs only
};

struct LoadOptions {
  std::string backend = "openvino";
  std::string device = "CPU";
  std::string precision = "fp32";
  std::string cache_dir;
  std::string calibration_cache;
  int max_batch = 64;
  int threads = 0;  // 0 = the runtime's default
};

class Network {
 public:
  virtual ~Network() = default;
  // inputs: one per role input, in the role's order. Writes the role's first output,
  // float32, `out_elems` values (batch * per-sample size).
  virtual void run(const std::vector<HostTensor> &inputs, int64_t batch, float *out, size_t out_elems) = 0;
  // Every output, in the role's order, with the shapes the call produced: roles with dynamic dims
  // other than the batch (the token models' step network). Backends without it refuse.
  virtual void run_all(const std::vector<HostTensor> &inputs, int64_t batch, std::vector<OutTensor> &outputs);
};

std::unique_ptr<Network> make_openvino_network(const Manifest &m, const std::string &role, const LoadOptions &o);
#ifdef EDGEGEN_WITH_TENSORRT
std::unique_ptr<Network> make_tensorrt_network(const Manifest &m, const std::string &role, const LoadOptions &o);
#endif
#ifdef EDGEGEN_WITH_AOTI
std::unique_ptr<Network> make_aoti_network(const Manifest &m, const std::string &role, const LoadOptions &o);
#endif
#ifdef EDGEGEN_WITH_EXECUTORCH
std::unique_ptr<Network> make_executorch_network(const Manifest &m, const std::string &role, const LoadOptions &o);
#endif

}  // namespace edgegen
