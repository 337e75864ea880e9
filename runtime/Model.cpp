#include "Model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <HalideRuntime.h>

#include "Random.h"
#include "Safetensors.h"

namespace cnnc {

namespace {

// Large batches run in chunks so that the pipelines' intermediate buffers
// stay bounded.
constexpr int kMaxChunk = 256;

// A dense halide_buffer_t over host memory; `dims` innermost first.
class HostBuffer {
 public:
  HostBuffer(const float* data, std::vector<int64_t> dims) {
    int64_t stride = 1;
    for (int64_t extent : dims) {
      dims_.push_back({0, static_cast<int32_t>(extent), static_cast<int32_t>(stride), 0});
      stride *= extent;
    }
    buffer_.host = reinterpret_cast<uint8_t*>(const_cast<float*>(data));
    buffer_.type = halide_type_t(halide_type_float, 32, 1);
    buffer_.dimensions = static_cast<int32_t>(dims_.size());
    buffer_.dim = dims_.data();
  }
  HostBuffer(const HostBuffer&) = delete;
  halide_buffer_t* get() { return &buffer_; }

 private:
  halide_buffer_t buffer_{};
  std::vector<halide_dimension_t> dims_;
};

// Halide's dimension order of an NCHW (or N x features) batch.
std::vector<int64_t> batchDims(int rank, const int64_t* shape, int n) {
  if (rank == 3) return {shape[2], shape[1], shape[0], n};
  return {shape[0], n};
}

std::vector<int64_t> reversed(const int64_t* shape, int rank) {
  return std::vector<int64_t>(std::reverse_iterator<const int64_t*>(shape + rank),
                              std::reverse_iterator<const int64_t*>(shape));
}

int64_t elements(const int64_t* shape, int rank) {
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) count *= shape[i];
  return count;
}

// Every parameter as a pipeline argument, in the table's order.
void appendParameterBuffers(const NetworkInfo& info, std::vector<std::vector<float>>& params,
                            std::vector<std::unique_ptr<HostBuffer>>& buffers,
                            std::vector<void*>& arguments) {
  for (int i = 0; i < info.paramCount; ++i) {
    buffers.push_back(std::make_unique<HostBuffer>(
        params[i].data(), reversed(info.params[i].shape, info.params[i].rank)));
    arguments.push_back(buffers.back()->get());
  }
}

}  // namespace

ModelBase::ModelBase(const NetworkInfo& info, uint64_t seed) : info_(info) {
  params_.resize(info_.paramCount);
  for (int i = 0; i < info_.paramCount; ++i)
    params_[i].assign(elements(info_.params[i].shape, info_.params[i].rank), 0.0f);
  initialize(seed);
}

ModelBase::~ModelBase() = default;

void ModelBase::initialize(uint64_t seed) {
  Random random(seed);
  for (int i = 0; i < info_.paramCount; ++i) {
    const ParamInfo& p = info_.params[i];
    std::vector<float>& values = params_[i];
    std::string init = p.init;
    double fanIn = static_cast<double>(p.fanIn), fanOut = static_cast<double>(p.fanOut);
    // PyTorch's defaults: kaiming_uniform_(a=sqrt(5)) for weights and
    // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases: both the same bound.
    if (init == "default") {
      double bound = 1.0 / std::sqrt(fanIn);
      for (float& v : values) v = static_cast<float>(random.uniform(-bound, bound));
    } else if (init == "ones") {
      std::fill(values.begin(), values.end(), 1.0f);
    } else if (init == "zeros") {
      std::fill(values.begin(), values.end(), 0.0f);
    } else if (init == "he_uniform") {
      double bound = std::sqrt(6.0 / fanIn);
      for (float& v : values) v = static_cast<float>(random.uniform(-bound, bound));
    } else if (init == "he_normal") {
      double sigma = std::sqrt(2.0 / fanIn);
      for (float& v : values) v = static_cast<float>(random.normal() * sigma);
    } else if (init == "xavier_uniform") {
      double bound = std::sqrt(6.0 / (fanIn + fanOut));
      for (float& v : values) v = static_cast<float>(random.uniform(-bound, bound));
    } else if (init == "xavier_normal") {
      double sigma = std::sqrt(2.0 / (fanIn + fanOut));
      for (float& v : values) v = static_cast<float>(random.normal() * sigma);
    } else {
      throw Error("parameter '" + std::string(p.name) + "' has unknown init scheme '" + init + "'");
    }
  }
  activationsValid_ = false;
}

void ModelBase::forward(const float* x, int n, float* out) {
  if (n < 1) throw Error("forward: n must be at least 1, got " + std::to_string(n));
  if (!x || !out) throw Error("forward: null input or output pointer");
  std::vector<std::unique_ptr<HostBuffer>> params;
  std::vector<void*> arguments = {nullptr};  // the input, set per chunk
  appendParameterBuffers(info_, params_, params, arguments);
  arguments.push_back(nullptr);  // the output, set per chunk
  const LayerInfo& last = info_.layers[info_.layerCount - 1];
  for (int start = 0; start < n; start += kMaxChunk) {
    int count = std::min(kMaxChunk, n - start);
    HostBuffer input(x + start * info_.inputSize,
                     batchDims(info_.inputRank, info_.inputShape, count));
    HostBuffer output(out + start * info_.outputSize, batchDims(last.rank, last.shape, count));
    arguments.front() = input.get();
    arguments.back() = output.get();
    PipelineEntry entry = count == 1 ? info_.forwardOne : info_.forward;
    int status = entry(arguments.data());
    if (status != 0)
      throw Error("forward of network '" + std::string(info_.name) + "' failed with Halide error " +
                  std::to_string(status));
  }
  lastInput_.assign(x, x + static_cast<size_t>(n) * info_.inputSize);
  lastBatch_ = n;
  activationsValid_ = false;
}

int ModelBase::predict(const float* example) {
  std::vector<float> out(info_.outputSize);
  forward(example, 1, out.data());
  return static_cast<int>(std::max_element(out.begin(), out.end()) - out.begin());
}

void ModelBase::load(const std::string& path) {
  safetensors::File file = safetensors::read(path);
  std::vector<safetensors::ExpectedTensor> expected;
  for (int i = 0; i < info_.paramCount; ++i) {
    const ParamInfo& p = info_.params[i];
    expected.push_back({p.name, std::vector<int64_t>(p.shape, p.shape + p.rank)});
  }
  // A checkpoint's optimizer state and PyTorch's batchnorm step counters are
  // not weights.
  safetensors::check(file, expected, path, {safetensors::kOptimizerPrefix},
                     {".num_batches_tracked"});
  // Moved, not copied: a large network's weights are held once.
  for (int i = 0; i < info_.paramCount; ++i) {
    auto tensor =
        std::find_if(file.tensors.begin(), file.tensors.end(),
                     [&](const safetensors::Tensor& t) { return t.name == info_.params[i].name; });
    params_[i] = std::move(tensor->data);
  }
  activationsValid_ = false;
}

void ModelBase::save(const std::string& path) const {
  safetensors::File file;
  file.metadata = {
      {"format", "cnnc"}, {"network", info_.name}, {"architecture", info_.architectureHash}};
  for (int i = 0; i < info_.paramCount; ++i) {
    const ParamInfo& p = info_.params[i];
    file.tensors.push_back(
        {p.name, "F32", std::vector<int64_t>(p.shape, p.shape + p.rank), params_[i]});
  }
  safetensors::write(path, file);
}

int ModelBase::paramIndex(const std::string& name) const {
  for (int i = 0; i < info_.paramCount; ++i)
    if (name == info_.params[i].name) return i;
  throw Error("network '" + std::string(info_.name) + "' has no parameter '" + name + "'");
}

int ModelBase::layerIndex(const std::string& name) const {
  for (int i = 0; i < info_.layerCount; ++i)
    if (name == info_.layers[i].name) return i;
  throw Error("network '" + std::string(info_.name) + "' has no layer '" + name + "'");
}

std::vector<std::string> ModelBase::parameterNames() const {
  std::vector<std::string> names;
  for (int i = 0; i < info_.paramCount; ++i) names.push_back(info_.params[i].name);
  return names;
}

float* ModelBase::parameter(const std::string& name) {
  activationsValid_ = false;
  return params_[paramIndex(name)].data();
}

const float* ModelBase::parameter(const std::string& name) const {
  return params_[paramIndex(name)].data();
}

std::vector<int64_t> ModelBase::parameterShape(const std::string& name) const {
  const ParamInfo& p = info_.params[paramIndex(name)];
  return std::vector<int64_t>(p.shape, p.shape + p.rank);
}

int64_t ModelBase::parameterCount() const {
  int64_t count = 0;
  for (int i = 0; i < info_.paramCount; ++i)
    if (info_.params[i].trainable) count += static_cast<int64_t>(params_[i].size());
  return count;
}

std::vector<int64_t> ModelBase::activationShape(const std::string& layer) const {
  const LayerInfo& info = info_.layers[layerIndex(layer)];
  std::vector<int64_t> shape = {lastBatch_};
  shape.insert(shape.end(), info.shape, info.shape + info.rank);
  return shape;
}

std::vector<float> ModelBase::activations(const std::string& layer) {
  int index = layerIndex(layer);
  if (lastBatch_ == 0) throw Error("activations: call forward first");
  if (!activationsValid_) {
    HostBuffer input(lastInput_.data(), batchDims(info_.inputRank, info_.inputShape, lastBatch_));
    std::vector<std::unique_ptr<HostBuffer>> buffers;
    std::vector<void*> arguments = {input.get()};
    appendParameterBuffers(info_, params_, buffers, arguments);
    activations_.assign(info_.layerCount, {});
    for (int i = 0; i < info_.layerCount; ++i) {
      const LayerInfo& l = info_.layers[i];
      activations_[i].assign(static_cast<size_t>(lastBatch_) * elements(l.shape, l.rank), 0.0f);
      buffers.push_back(std::make_unique<HostBuffer>(activations_[i].data(),
                                                     batchDims(l.rank, l.shape, lastBatch_)));
      arguments.push_back(buffers.back()->get());
    }
    int status = info_.activations(arguments.data());
    if (status != 0)
      throw Error("activations pipeline failed with Halide error " + std::to_string(status));
    activationsValid_ = true;
  }
  return activations_[index];
}

}  // namespace cnnc
