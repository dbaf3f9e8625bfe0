// ExecuTorch backend (compiled with EDGEGEN_WITH_EXECUTORCH, on when the executorch wheel's CMake
// package is found): the bundle's `executorch/<role>*.pte` run by ExecuTorch's C++ runtime, the one
// Android and iOS apps embed (libexecutorch with the optimized CPU kernels and the XNNPACK delegate,
// from the wheel). Same rules as runtimes/backends/executorch_backend.py:
// - a dynamic-batch program takes up to the entry's `max_batch` rows per call (ExecuTorch plans
//   memory at the upper bound); bigger batches run in chunks;
// - a static-batch entry (`static_batches`: size -> file) runs each chunk on the next size up,
//   padded with copies of the chunk's first row (runtimes/backends/targets.py run_static);
// - `requires.delegates` names the runtime backends the program calls: one this runtime lacks is
//   refused in one line.
// Trust: a .pte is a flatbuffer program (operator list, weights, XNNPACK subgraphs); the kernels are
// the runtime's own, so it is data like ONNX (SECURITY.md): no trust switch, the manifest's sha256
// check covers every program (static-batch files are companions), and the flatbuffer is verified
// (Program::Verification::InternalConsistency) before anything in it is used.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>
#include <executorch/extension/threadpool/threadpool_guard.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/platform/runtime.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "error.hpp"
#include "network.hpp"

// The wheel ships libexecutorch_threadpool but not its header: these two declarations match its
// exported symbols (executorch 1.5.1), used only to size the process-wide pool (threads > 1).
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool *get_threadpool();
}  // namespace executorch::extension::threadpool

namespace edgegen {
namespace {

namespace fs = std::filesystem;
using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;

ScalarType scalar_type(DType d) {
  switch (d) {
    case DType::F32: return ScalarType::Float;
    case DType::F16: return ScalarType::Half;
    case DType::I64: return ScalarType::Long;
    case DType::I32: return ScalarType::Int;
  }
  return ScalarType::Float;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::toupper(c)); });
  return s;
}

std::string et_error(Error e) {
  return std::string(executorch::runtime::to_string(e)) + " (ExecuTorch error " + std::to_string(int(e)) + ")";
}

// threads > 1: the process-wide pool, like the Python backend's _unsafe_reset_threadpool (it is
// shared by every ExecuTorch program in the process; resetting it while one runs is unsafe, so it
// happens here, at load, under a lock).
void size_threadpool(int threads) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto *pool = executorch::extension::threadpool::get_threadpool();
  if (!pool) fail(EDGEGEN_ERR_RUNTIME, "the ExecuTorch thread pool is not available");
  if (pool->get_thread_count() != size_t(threads) && !pool->_unsafe_reset_threadpool(uint32_t(threads)))
    fail(EDGEGEN_ERR_RUNTIME, "cannot resize the ExecuTorch thread pool to " + std::to_string(threads) + " threads");
}

class ExecuTorchNetwork : public Network {
 public:
  ExecuTorchNetwork(const Manifest &m, const std::string &role, const LoadOptions &o)
      : role_(m.role(role)), name_(role), single_thread_(o.threads == 1) {
    static std::once_flag init;
    std::call_once(init, [] { executorch::runtime::runtime_init(); });
    if (!o.device.empty() && upper(o.device) != "CPU")
      fail(EDGEGEN_ERR_UNSUPPORTED, "the executorch backend runs XNNPACK programs on the CPU (device '" + o.device +
                                        "' is not supported)");
    const std::string main = m.file(role, "executorch", o.precision);  // one line when the bundle has none
    const json &entry = role_.files.at("executorch").at(o.precision).raw;
    check_delegates(entry, o.precision);
    if (o.threads > 1) size_threadpool(o.threads);
    std::optional<executorch::extension::threadpool::NoThreadPoolGuard> serial;
    if (single_thread_) serial.emplace();  // XNNPACK takes its thread pool when the method loads
    const json statics = entry.value("static_batches", json::object());
    if (statics.is_object() && !statics.empty()) {
      for (const auto &[size, rel] : statics.items()) {
        int64_t b = 0;
        try {
          b = std::stoll(size);
        } catch (const std::exception &) {
          b = 0;
        }
        if (b <= 0 || !rel.is_string())
          fail(EDGEGEN_ERR_MALFORMED, "executorch entry of '" + role + "': static batch '" + size + "' is not a positive size and a path");
        programs_[b] = load((fs::path(m.root) / rel.get<std::string>()).string());
      }
    } else {
      programs_[0] = load(main);
      const json mb = entry.value("max_batch", json());
      max_batch_ = mb.is_number_integer() && mb.get<int64_t>() > 0 ? mb.get<int64_t>() : 0;
    }
  }

  void run(const std::vector<HostTensor> &inputs, int64_t batch, float *out, size_t out_elems) override {
    if (inputs.size() != role_.inputs.size())
      fail(EDGEGEN_ERR_RUNTIME, "role '" + name_ + "' takes " + std::to_string(role_.inputs.size()) + " inputs, got " +
                                    std::to_string(inputs.size()));
    if (batch <= 0 || out_elems % size_t(batch) != 0) fail(EDGEGEN_ERR_RUNTIME, "bad batch for an ExecuTorch call");
    const size_t per_out = out_elems / size_t(batch);
    std::optional<executorch::extension::threadpool::NoThreadPoolGuard> serial;
    if (single_thread_) serial.emplace();
    int64_t start = 0;
    while (start < batch) {
      const int64_t left = batch - start;
      int64_t size = 0, real = 0;
      Module *mod = nullptr;
      if (programs_.count(0)) {  // dynamic batch, bounded by the planned maximum
        real = size = max_batch_ > 0 ? std::min(left, max_batch_) : left;
        mod = programs_[0].get();
      } else {  // the next static size up, else the largest
        auto it = programs_.lower_bound(left);
        if (it == programs_.end()) it = std::prev(programs_.end());
        size = it->first;
        real = std::min(left, size);
        mod = it->second.get();
      }
      call(*mod, inputs, batch, start, real, size, out + size_t(start) * per_out, size_t(real) * per_out);
      start += real;
    }
  }

 private:
  std::unique_ptr<Module> load(const std::string &path) {
    const std::string file = fs::path(path).filename().string();
    auto mod = std::make_unique<Module>(path, Module::LoadMode::Mmap);
    Error e = mod->load(executorch::runtime::Program::Verification::InternalConsistency);
    if (e != Error::Ok) fail(EDGEGEN_ERR_RUNTIME, "cannot load the ExecuTorch program " + file + ": " + et_error(e));
    auto meta = mod->method_meta("forward");
    if (!meta.ok()) fail(EDGEGEN_ERR_RUNTIME, "the ExecuTorch program " + file + " has no 'forward' method");
    if (meta->num_inputs() != role_.inputs.size() || meta->num_outputs() < 1)
      fail(EDGEGEN_ERR_RUNTIME, "the ExecuTorch program " + file + " takes " + std::to_string(meta->num_inputs()) +
                                    " inputs, role '" + name_ + "' has " + std::to_string(role_.inputs.size()));
    e = mod->load_forward();
    if (e != Error::Ok)
      fail(EDGEGEN_ERR_RUNTIME, "cannot load the 'forward' method of the ExecuTorch program " + file + ": " + et_error(e));
    return mod;
  }

  void check_delegates(const json &entry, const std::string &precision) const {
    const json req = entry.value("requires", json::object());
    const json delegates = req.is_object() ? req.value("delegates", json::array()) : json::array();
    std::string missing;
    for (const auto &d : delegates)
      if (d.is_string() && !executorch::runtime::get_backend_class(d.get<std::string>().c_str()))
        missing += (missing.empty() ? "" : ", ") + d.get<std::string>();
    if (missing.empty()) return;
    std::string have;
    for (size_t i = 0; i < executorch::runtime::get_num_registered_backends(); ++i) {
      auto n = executorch::runtime::get_backend_name(i);
      if (n.ok()) have += (have.empty() ? "" : ", ") + std::string(*n);
    }
    fail(EDGEGEN_ERR_UNSUPPORTED, "this " + precision + " ExecuTorch program of '" + name_ + "' needs the " + missing +
                                      " delegate, which this ExecuTorch runtime does not have (it has: " + have + ")");
  }

  // Rows [start, start + real) of every batched input, padded to `size` rows with copies of the
  // chunk's first row; the first output's `real` rows go to `out`.
  void call(Module &mod, const std::vector<HostTensor> &inputs, int64_t batch, int64_t start, int64_t real, int64_t size,
            float *out, size_t out_elems) {
    std::vector<TensorPtr> tensors;
    std::vector<EValue> args;
    tensors.reserve(inputs.size());
    padded_.resize(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      const HostTensor &h = inputs[i];
      std::vector<executorch::aten::SizesType> sizes(h.shape.begin(), h.shape.end());
      const bool batched = !h.shape.empty() && h.shape[0] == batch;
      auto *base = static_cast<unsigned char *>(const_cast<void *>(h.data));
      if (!batched) {  // no batch dim (none of the plan roles has one today): passed whole
        tensors.push_back(executorch::extension::from_blob(base, sizes, scalar_type(h.dtype)));
        continue;
      }
      int64_t row_elems = 1;
      for (size_t d = 1; d < h.shape.size(); ++d) row_elems *= h.shape[d];
      const size_t row_bytes = size_t(row_elems) * dtype_size(h.dtype);
      unsigned char *p = base + size_t(start) * row_bytes;
      if (size > real) {  // a static program: pad the chunk
        std::vector<unsigned char> &buf = padded_[i];
        buf.resize(size_t(size) * row_bytes);
        std::memcpy(buf.data(), p, size_t(real) * row_bytes);
        for (int64_t r = real; r < size; ++r) std::memcpy(buf.data() + size_t(r) * row_bytes, p, row_bytes);
        p = buf.data();
      }
      sizes[0] = executorch::aten::SizesType(size);
      // wraps the caller's memory (ExecuTorch copies it into the program's planned input)
      tensors.push_back(executorch::extension::from_blob(p, sizes, scalar_type(h.dtype)));
    }
    for (const TensorPtr &t : tensors) args.emplace_back(t);
    auto result = mod.execute("forward", args);
    if (!result.ok()) fail(EDGEGEN_ERR_RUNTIME, name_ + ": ExecuTorch failed to run: " + et_error(result.error()));
    if (result->empty() || !(*result)[0].isTensor())
      fail(EDGEGEN_ERR_RUNTIME, "ExecuTorch program of '" + name_ + "' returned no output tensor");
    const auto &y = (*result)[0].toTensor();
    if (y.scalar_type() != ScalarType::Float)
      fail(EDGEGEN_ERR_RUNTIME, "ExecuTorch output '" + role_.outputs[0].name + "' is not float32");
    const size_t have = size_t(y.numel());
    if (have % size_t(size) != 0 || have / size_t(size) * size_t(real) != out_elems)
      fail(EDGEGEN_ERR_RUNTIME, "ExecuTorch output '" + role_.outputs[0].name + "' has an unexpected size");
    // the output lives in the method's planned memory, which the next call overwrites: copy it out
    std::memcpy(out, y.const_data_ptr<float>(), out_elems * sizeof(float));
  }

  const RoleSpec &role_;
  std::string name_;
  bool single_thread_;
  std::map<int64_t, std::unique_ptr<Module>> programs_;  // 0: the dynamic-batch program; else static size -> program
  int64_t max_batch_ = 0;                                 // dynamic program's planned bound (0 = unbounded)
  std::vector<std::vector<unsigned char>> padded_;       // static programs: a padded chunk per input
};

}  // namespace

std::unique_ptr<Network> make_executorch_network(const Manifest &m, const std::string &role, const LoadOptions &o) {
  return std::make_unique<ExecuTorchNetwork>(m, role, o);
}

}  // namespace edgegen
