// AOTInductor backend (compiled only with -DEDGEGEN_WITH_AOTI=ON): the bundle's ``aoti/<role>.pt2``
// package loaded through LibTorch's AOTIModelPackageLoader. LibTorch comes from the torch wheel
// (headers + CMake config under torch/share/cmake); the package must have been compiled by the
// same torch version, on the same kind of machine (export/aoti_export.py records both).
// The package has a dynamic batch, so one loader serves every batch size.
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>

#include <cstring>
#include <memory>

#include "error.hpp"
#include "network.hpp"

namespace edgegen {
namespace {

at::ScalarType scalar_type(DType d) {
  switch (d) {
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
  }
  return at::kFloat;
}

class AOTINetwork : public Network {
 public:
  AOTINetwork(const Manifest &m, const std::string &role, const LoadOptions &o) : role_(m.role(role)) {
    if (o.precision != "fp32")
      fail(EDGEGEN_ERR_UNSUPPORTED, "the aoti backend runs the bundle's fp32 package (precision '" + o.precision + "' is not exported)");
    const std::string path = m.file(role, "aoti", o.precision);
    try {
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path);
    } catch (const std::exception &e) {
      fail(EDGEGEN_ERR_RUNTIME, std::string("cannot load AOTInductor package ") + path + ": " + e.what());
    }
  }

  void run(const std::vector<HostTensor> &inputs, int64_t batch, float *out, size_t out_elems) override {
    std::vector<at::Tensor> args;
    args.reserve(inputs.size());
    for (const HostTensor &h : inputs)  // wraps the caller's memory: no copy on the way in
      args.push_back(at::from_blob(const_cast<void *>(h.data), h.shape, at::TensorOptions().dtype(scalar_type(h.dtype))));
    c10::InferenceMode guard;
    std::vector<at::Tensor> outs;
    try {
      outs = loader_->run(args);
    } catch (const std::exception &e) {
      fail(EDGEGEN_ERR_RUNTIME, std::string("AOTInductor run failed: ") + e.what());
    }
    if (outs.empty()) fail(EDGEGEN_ERR_RUNTIME, "AOTInductor package returned no output");
    const at::Tensor y = outs[0].to(at::kFloat).contiguous();
    if (static_cast<size_t>(y.numel()) != out_elems)
      fail(EDGEGEN_ERR_RUNTIME, "AOTInductor output '" + role_.outputs[0].name + "' has an unexpected size");
    std::memcpy(out, y.data_ptr<float>(), out_elems * sizeof(float));
  }

 private:
  const RoleSpec &role_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

}  // namespace

std::unique_ptr<Network> make_aoti_network(const Manifest &m, const std::string &role, const LoadOptions &o) {
  return std::make_unique<AOTINetwork>(m, role, o);
}

}  // namespace edgegen
