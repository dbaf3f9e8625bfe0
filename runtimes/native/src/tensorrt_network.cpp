// TensorRT backend (compiled only when CMake finds TensorRT: EDGEGEN_WITH_TENSORRT).
//
// Builds an engine from the bundle's ONNX export with one optimization profile covering
// batch 1 .. 2 * max_batch (classifier-free guidance doubles the batch), in fp32, fp16, or
// int8 calibrated from a stored calibration cache (IInt8EntropyCalibrator2 whose
// readCalibrationCache returns it; no calibration data is run here). Engines are cached
// in cache_dir when one is given. Written against the TensorRT 10 C++ API
// (setInputShape / setTensorAddress / enqueueV3).
#include <NvInfer.h>
#include <NvOnnxParser.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "error.hpp"
#include "network.hpp"
#include "sha256.hpp"

namespace edgegen {
namespace {

namespace fs = std::filesystem;
using namespace nvinfer1;

class Logger : public ILogger {
 public:
  void log(Severity severity, const char *msg) noexcept override {
    if (severity <= Severity::kERROR) last_error = msg;
  }
  std::string last_error;
};

void cuda_check(cudaError_t e, const char *what) {
  if (e != cudaSuccess) fail(EDGEGEN_ERR_RUNTIME, std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

std::vector<char> read_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(EDGEGEN_ERR_NOT_FOUND, "cannot read " + path);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

// int8 from a stored calibration cache: TensorRT asks for batches only when the cache is
// missing or stale, and then this calibrator has none to give (getBatch returns false).
class CacheCalibrator : public IInt8EntropyCalibrator2 {
 public:
  explicit CacheCalibrator(std::vector<char> cache) : cache_(std::move(cache)) {}
  int32_t getBatchSize() const noexcept override { return 1; }
  bool getBatch(void *[], const char *[], int32_t) noexcept override { return false; }
  const void *readCalibrationCache(size_t &length) noexcept override {
    length = cache_.size();
    return cache_.empty() ? nullptr : cache_.data();
  }
  void writeCalibrationCache(const void *, size_t) noexcept override {}

 private:
  std::vector<char> cache_;
};

Dims to_dims(const std::vector<int64_t> &shape) {
  Dims d{};
  d.nbDims = int32_t(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) d.d[i] = shape[i];
  return d;
}

struct DeviceBuffer {
  void *ptr = nullptr;
  size_t bytes = 0;
  void reserve(size_t n) {
    if (n <= bytes) return;
    if (ptr) cudaFree(ptr);
    ptr = nullptr;
    cuda_check(cudaMalloc(&ptr, n), "cudaMalloc");
    bytes = n;
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
};

class TensorRTNetwork : public Network {
 public:
  TensorRTNetwork(const Manifest &m, const std::string &role, const LoadOptions &o)
      : role_(m.role(role)), max_batch_(2 * int64_t(o.max_batch)) {
    if (o.precision != "fp32" && o.precision != "fp16" && o.precision != "int8")
      fail(EDGEGEN_ERR_UNSUPPORTED, "TensorRT precision must be fp32, fp16 or int8, got '" + o.precision + "'");
    select_device(o.device);
    const std::string onnx = onnx_source(m, role, o.precision);
    std::vector<char> calib;
    if (o.precision == "int8") calib = read_bytes(calibration_cache_path(m, role, o));
    const std::string key = sha256_file(onnx).substr(0, 16) + "-" + o.precision + "-b" + std::to_string(max_batch_) +
                            (calib.empty() ? "" : "-c" + sha256_hex(calib.data(), calib.size()).substr(0, 8));
    const std::string cached = o.cache_dir.empty() ? "" : (fs::path(o.cache_dir) / (role + "-" + key + ".engine")).string();
    runtime_.reset(createInferRuntime(logger_));
    if (!runtime_) fail(EDGEGEN_ERR_RUNTIME, "TensorRT: createInferRuntime failed");
    std::vector<char> plan;
    if (!cached.empty() && fs::is_regular_file(cached)) plan = read_bytes(cached);
    else plan = build(onnx, o.precision, calib, cached);
    engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine_) fail(EDGEGEN_ERR_RUNTIME, "TensorRT: cannot deserialize the engine: " + logger_.last_error);
    context_.reset(engine_->createExecutionContext());
    if (!context_) fail(EDGEGEN_ERR_RUNTIME, "TensorRT: cannot create an execution context");
    cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }

  ~TensorRTNetwork() override {
    if (stream_) cudaStreamDestroy(stream_);
  }

  void run(const std::vector<HostTensor> &inputs, int64_t batch, float *out, size_t out_elems) override {
    if (batch > max_batch_)
      fail(EDGEGEN_ERR_UNSUPPORTED, "batch " + std::to_string(batch) + " exceeds the TensorRT profile (max " +
                                        std::to_string(max_batch_) + "); raise max_batch when loading");
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string &name = role_.inputs[i].name;
      const HostTensor &h = inputs[i];
      size_t count = 1;
      for (int64_t d : h.shape) count *= size_t(d);
      const void *src = h.data;
      // TensorRT may import int64 inputs as int32: convert on the host when the engine says so
      const DataType want = engine_->getTensorDataType(name.c_str());
      if (h.dtype == DType::I64 && want == DataType::kINT32) {
        staging_[name].resize(count * 4);
        auto *dst = reinterpret_cast<int32_t *>(staging_[name].data());
        for (size_t k = 0; k < count; ++k) dst[k] = int32_t(static_cast<const int64_t *>(h.data)[k]);
        src = dst;
      }
      const size_t bytes = count * (src == h.data ? dtype_size(h.dtype) : 4);
      DeviceBuffer &buf = device_[name];
      buf.reserve(bytes);
      cuda_check(cudaMemcpyAsync(buf.ptr, src, bytes, cudaMemcpyHostToDevice, stream_), "copy in");
      if (!context_->setInputShape(name.c_str(), to_dims(h.shape)))
        fail(EDGEGEN_ERR_RUNTIME, "TensorRT rejected the shape of input '" + name + "'");
      context_->setTensorAddress(name.c_str(), buf.ptr);
    }
    const std::string &oname = role_.outputs[0].name;
    const DataType odt = engine_->getTensorDataType(oname.c_str());
    if (odt != DataType::kFLOAT) fail(EDGEGEN_ERR_UNSUPPORTED, "TensorRT output '" + oname + "' is not float32");
    DeviceBuffer &obuf = device_[oname];
    obuf.reserve(out_elems * sizeof(float));
    context_->setTensorAddress(oname.c_str(), obuf.ptr);
    if (!context_->enqueueV3(stream_)) fail(EDGEGEN_ERR_RUNTIME, "TensorRT enqueueV3 failed: " + logger_.last_error);
    cuda_check(cudaMemcpyAsync(out, obuf.ptr, out_elems * sizeof(float), cudaMemcpyDeviceToHost, stream_), "copy out");
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

 private:
  static void select_device(const std::string &device) {
    const std::string d = device.empty() ? "GPU" : device;
    if (d != "GPU" && d.rfind("GPU:", 0) != 0)
      fail(EDGEGEN_ERR_UNSUPPORTED, "the TensorRT backend runs on 'GPU' or 'GPU:<index>', not '" + d + "'");
    int index = 0;
    if (d.size() > 4) index = std::stoi(d.substr(4));
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || index >= count)
      fail(EDGEGEN_ERR_UNSUPPORTED, "no CUDA device " + std::to_string(index) + " here");
    cuda_check(cudaSetDevice(index), "cudaSetDevice");
  }

  // The bundle's TensorRT entry for this precision (export/tensorrt_export.py: an ONNX source
  // with its profile), else the plain fp32 ONNX export; TensorRT quantizes the graph itself.
  static const FileEntry *tensorrt_entry(const Manifest &m, const std::string &role, const std::string &precision) {
    const RoleSpec &r = m.role(role);
    auto f = r.files.find("tensorrt");
    if (f == r.files.end()) return nullptr;
    auto p = f->second.find(precision);
    return p == f->second.end() ? nullptr : &p->second;
  }

  static std::string onnx_source(const Manifest &m, const std::string &role, const std::string &precision) {
    if (const FileEntry *e = tensorrt_entry(m, role, precision)) return (fs::path(m.root) / e->path).string();
    return m.file(role, "onnx", "fp32");
  }

  // The caller's cache, else the one the calibration stage recorded in the manifest
  // (files.tensorrt.int8.calibration_cache, written by `edgegen calibrate`).
  static std::string calibration_cache_path(const Manifest &m, const std::string &role, const LoadOptions &o) {
    if (!o.calibration_cache.empty()) return o.calibration_cache;
    const FileEntry *e = tensorrt_entry(m, role, "int8");
    if (!e || e->calibration_cache.empty())
      fail(EDGEGEN_ERR_UNSUPPORTED, "TensorRT int8 needs a calibration cache: the bundle has none (run `edgegen "
                                    "calibrate --formats tensorrt`, or pass edgegen_load_params.calibration_cache)");
    return (fs::path(m.root) / e->calibration_cache).string();
  }

  std::vector<char> build(const std::string &onnx, const std::string &precision, const std::vector<char> &calib,
                          const std::string &cache_path) {
    std::unique_ptr<IBuilder> builder(createInferBuilder(logger_));
    if (!builder) fail(EDGEGEN_ERR_RUNTIME, "TensorRT: createInferBuilder failed");
    std::unique_ptr<INetworkDefinition> network(builder->createNetworkV2(0));  // explicit batch (TensorRT 10)
    std::unique_ptr<nvonnxparser::IParser> parser(nvonnxparser::createParser(*network, logger_));
    if (!parser->parseFromFile(onnx.c_str(), int32_t(ILogger::Severity::kWARNING))) {
      std::string why = parser->getNbErrors() > 0 ? parser->getError(0)->desc() : logger_.last_error;
      fail(EDGEGEN_ERR_RUNTIME, "TensorRT cannot parse " + onnx + ": " + why);
    }
    std::unique_ptr<IBuilderConfig> config(builder->createBuilderConfig());
    IOptimizationProfile *profile = builder->createOptimizationProfile();  // owned by the builder
    const int64_t opt = std::min<int64_t>(max_batch_, 16);
    for (const TensorSpec &t : role_.inputs) {
      profile->setDimensions(t.name.c_str(), OptProfileSelector::kMIN, to_dims(t.concrete(1)));
      profile->setDimensions(t.name.c_str(), OptProfileSelector::kOPT, to_dims(t.concrete(opt)));
      profile->setDimensions(t.name.c_str(), OptProfileSelector::kMAX, to_dims(t.concrete(max_batch_)));
    }
    config->addOptimizationProfile(profile);
    std::unique_ptr<CacheCalibrator> calibrator;
    if (precision == "fp16" || precision == "int8") config->setFlag(BuilderFlag::kFP16);
    if (precision == "int8") {
      config->setFlag(BuilderFlag::kINT8);
      calibrator = std::make_unique<CacheCalibrator>(calib);
      config->setInt8Calibrator(calibrator.get());
      config->setCalibrationProfile(profile);
    }
    std::unique_ptr<IHostMemory> serialized(builder->buildSerializedNetwork(*network, *config));
    if (!serialized) fail(EDGEGEN_ERR_RUNTIME, "TensorRT engine build failed: " + logger_.last_error);
    std::vector<char> plan(static_cast<const char *>(serialized->data()),
                           static_cast<const char *>(serialized->data()) + serialized->size());
    if (!cache_path.empty()) {  // write then rename: never a half-written engine in the cache
      fs::create_directories(fs::path(cache_path).parent_path());
      const std::string tmp = cache_path + ".tmp";
      std::ofstream(tmp, std::ios::binary).write(plan.data(), std::streamsize(plan.size()));
      fs::rename(tmp, cache_path);
    }
    return plan;
  }

  const RoleSpec &role_;
  int64_t max_batch_;
  Logger logger_;
  std::unique_ptr<IRuntime> runtime_;
  std::unique_ptr<ICudaEngine> engine_;
  std::unique_ptr<IExecutionContext> context_;
  cudaStream_t stream_ = nullptr;
  std::map<std::string, DeviceBuffer> device_;
  std::map<std::string, std::vector<unsigned char>> staging_;
};

}  // namespace

std::unique_ptr<Network> make_tensorrt_network(const Manifest &m, const std::string &role, const LoadOptions &o) {
  return std::make_unique<TensorRTNetwork>(m, role, o);
}

}  // namespace edgegen
