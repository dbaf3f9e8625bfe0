// OpenVINO backend: the bundle's IR, reshaped to a static batch and compiled once per
// batch size (cached). fp32 models run with INFERENCE_PRECISION_HINT f32: without it a
// CPU with bf16 support silently runs them in bf16 (same settings as openvino_backend.py).
#include <openvino/openvino.hpp>

#include <algorithm>
#include <cstring>
#include <map>

#include "error.hpp"
#include "network.hpp"

namespace edgegen {
namespace {

const char *const DEVICES[] = {"CPU", "GPU", "NPU", "AUTO", "HETERO", "MULTI"};

ov::element::Type element(DType d) {
  switch (d) {
    case DType::F32: return ov::element::f32;
    case DType::F16: return ov::element::f16;
    case DType::I64: return ov::element::i64;
    case DType::I32: return ov::element::i32;
  }
  return ov::element::dynamic;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::toupper(c)); });
  return s;
}

class OpenVINONetwork : public Network {
 public:
  OpenVINONetwork(const Manifest &m, const std::string &role, const LoadOptions &o) : role_(m.role(role)) {
    // any precision the manifest lists (fp32, or the int8 IR `edgegen calibrate` adds); file() fails
    // with a clear message for one the bundle does not have
    const std::string xml = m.file(role, "openvino", o.precision);
    device_ = upper(o.device.empty() ? "CPU" : o.device);
    check_device();
    // like the Python backend: fp32 models must not silently run in bf16; quantized IRs keep the
    // device's default for their float layers
    if (o.precision == "fp32") config_[ov::hint::inference_precision.name()] = ov::element::f32;
    if (!o.cache_dir.empty()) config_[ov::cache_dir.name()] = o.cache_dir;
    if (o.threads > 0) config_[ov::inference_num_threads.name()] = o.threads;
    model_ = core_.read_model(xml);
  }

  // CPU, GPU(.k), NPU, or a virtual device over a list (AUTO[:d1,d2], HETERO:d1,d2, MULTI:d1,d2): every
  // physical device it names must be available here, so a missing one fails at load with one line,
  // not when the first batch compiles.
  void check_device() {
    const size_t colon = device_.find(':');
    const std::string family = device_.substr(0, std::min(colon, device_.find('.')));
    if (std::find(std::begin(DEVICES), std::end(DEVICES), family) == std::end(DEVICES))
      fail(EDGEGEN_ERR_UNSUPPORTED, "unknown OpenVINO device '" + device_ + "' (choose CPU, GPU, NPU, AUTO, HETERO:<devices>, "
                                    "MULTI:<devices>)");
    const bool virt = family == "AUTO" || family == "HETERO" || family == "MULTI";
    std::vector<std::string> named;  // the physical devices to check
    if (!virt) {
      named.push_back(device_);
    } else if (colon != std::string::npos) {
      std::string list = device_.substr(colon + 1);
      for (size_t start = 0; start <= list.size();) {
        size_t end = list.find(',', start);
        if (end == std::string::npos) end = list.size();
        std::string d = list.substr(start, end - start);
        d = d.substr(0, d.find('('));  // MULTI:CPU(4),GPU(2): a request count
        if (!d.empty()) named.push_back(d);
        start = end + 1;
      }
    }
    if (family != "AUTO" && virt && named.empty())
      fail(EDGEGEN_ERR_UNSUPPORTED, "OpenVINO device '" + device_ + "' needs a device list, e.g. " + family + ":CPU");
    const auto avail = core_.get_available_devices();
    for (const std::string &d : named) {
      const std::string base = d.substr(0, d.find('.'));
      const bool ok = std::any_of(avail.begin(), avail.end(), [&](const std::string &a) {
        return a == d || a == base || a.rfind(d + ".", 0) == 0;
      });
      if (!ok) {
        std::string have;
        for (const auto &a : avail) have += (have.empty() ? "" : ", ") + a;
        fail(EDGEGEN_ERR_UNSUPPORTED, "OpenVINO device '" + d + "' is not available here (available: " + have + ")");
      }
    }
  }

  void run(const std::vector<HostTensor> &inputs, int64_t batch, float *out, size_t out_elems) override {
    ov::InferRequest &req = infer(inputs, batch);
    const ov::Tensor y = req.get_tensor(role_.outputs[0].name);
    if (y.get_element_type() != ov::element::f32 || y.get_size() != out_elems)
      fail(EDGEGEN_ERR_RUNTIME, "OpenVINO output '" + role_.outputs[0].name + "' has an unexpected type or size");
    std::memcpy(out, y.data(), out_elems * sizeof(float));
  }

  void run_all(const std::vector<HostTensor> &inputs, int64_t batch, std::vector<OutTensor> &outputs) override {
    ov::InferRequest &req = infer(inputs, batch);
    outputs.resize(role_.outputs.size());
    for (size_t i = 0; i < role_.outputs.size(); ++i) {
      const ov::Tensor y = req.get_tensor(role_.outputs[i].name);
      if (y.get_element_type() != ov::element::f32)
        fail(EDGEGEN_ERR_RUNTIME, "OpenVINO output '" + role_.outputs[i].name + "' is not float32");
      const ov::Shape s = y.get_shape();
      outputs[i].shape.assign(s.begin(), s.end());
      outputs[i].data.resize(y.get_size());  // copied: the request's buffer is reused by the next call
      std::memcpy(outputs[i].data.data(), y.data(), y.get_size() * sizeof(float));
    }
  }

 private:
  ov::InferRequest &infer(const std::vector<HostTensor> &inputs, int64_t batch) {
    ov::InferRequest &req = request(batch);
    for (size_t i = 0; i < inputs.size(); ++i) {
      const HostTensor &h = inputs[i];
      ov::Shape shape(h.shape.begin(), h.shape.end());
      // wraps the caller's memory: no copy on the way in
      req.set_tensor(role_.inputs[i].name, ov::Tensor(element(h.dtype), shape, const_cast<void *>(h.data)));
    }
    req.infer();
    return req;
  }

  // Compiled once per batch size with the batch static (about 30% faster than dynamic); other
  // named dims (a KV cache's sequence and past lengths) stay dynamic, as in openvino_backend.py.
  ov::InferRequest &request(int64_t batch) {
    auto it = cache_.find(batch);
    if (it != cache_.end()) return it->second.request;
    std::shared_ptr<ov::Model> model = model_->clone();
    std::map<std::string, ov::PartialShape> shapes;
    for (const TensorSpec &t : role_.inputs) {
      const auto dims = t.concrete(batch);
      std::vector<ov::Dimension> pdims;
      for (int64_t d : dims) pdims.push_back(d == DIM_DYNAMIC ? ov::Dimension::dynamic() : ov::Dimension(d));
      shapes[t.name] = ov::PartialShape(pdims);
    }
    model->reshape(shapes);
    Compiled c;
    c.model = core_.compile_model(model, device_, config_);
    c.request = c.model.create_infer_request();
    return cache_.emplace(batch, std::move(c)).first->second.request;
  }

  struct Compiled {
    ov::CompiledModel model;
    ov::InferRequest request;
  };
  const RoleSpec &role_;
  ov::Core core_;
  std::string device_;
  ov::AnyMap config_;
  std::shared_ptr<ov::Model> model_;
  std::map<int64_t, Compiled> cache_;  // batch size -> compiled static-shape model
};

}  // namespace

std::unique_ptr<Network> make_openvino_network(const Manifest &m, const std::string &role, const LoadOptions &o) {
  return std::make_unique<OpenVINONetwork>(m, role, o);
}

}  // namespace edgegen
