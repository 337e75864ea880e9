#include "Model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <HalideRuntime.h>

#include "BufferCache.h"
#include "Random.h"
#include "Safetensors.h"
#include "ThreadPool.h"

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
  void setHost(const void* data) {
    buffer_.host = reinterpret_cast<uint8_t*>(const_cast<void*>(data));
  }

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

// Prepared tensor t's extents, halide order (PrepareCall).
std::vector<int64_t> preparedDims(const NetworkInfo& info, int t) {
  const int64_t* e = info.prepareCalls[t / 2].extents;
  if (t % 2 == 1) return {e[0] * e[4]};
  return std::vector<int64_t>(e, e + 5);
}

// Parameter i of the table, in halide's dimension order.
std::unique_ptr<HostBuffer> parameterBuffer(const NetworkInfo& info,
                                            std::vector<std::vector<float>>& params, int i) {
  return std::make_unique<HostBuffer>(params[i].data(),
                                      reversed(info.params[i].shape, info.params[i].rank));
}

// Every parameter as a pipeline argument, in the table's order; then, with
// `prepared`, every prepared tensor.
void appendParameterBuffers(const NetworkInfo& info, std::vector<std::vector<float>>& params,
                            const std::vector<AlignedFloats>* prepared,
                            std::vector<std::unique_ptr<HostBuffer>>& buffers,
                            std::vector<void*>& arguments) {
  for (int i = 0; i < info.paramCount; ++i) {
    buffers.push_back(parameterBuffer(info, params, i));
    arguments.push_back(buffers.back()->get());
  }
  if (!prepared) return;
  for (size_t t = 0; t < prepared->size(); ++t) {
    buffers.push_back(std::make_unique<HostBuffer>((*prepared)[t].data(),
                                                   preparedDims(info, static_cast<int>(t))));
    arguments.push_back(buffers.back()->get());
  }
}

// A split entry point's examples per run: its feature maps, all of them
// at once at worst, within about this many bytes.
constexpr double kLayerProgramBytes = 512.0 * 1024 * 1024;

int64_t callElements(const LayerCall& call) {
  return call.extents[0] * call.extents[1] * call.extents[2];
}

int layerProgramChunk(const LayerProgram& program) {
  double bytes = 0;
  for (int i = 0; i < program.callCount; ++i) bytes += 4.0 * double(callElements(program.calls[i]));
  return static_cast<int>(std::max(1.0, std::min(double(kMaxChunk), kLayerProgramBytes / bytes)));
}

// A layer's feature map from the internal layout (c, x, y, n), `extents`
// (c, x, y) in storage, to NCHW (or n x features) of the layer's shape.
void toApiLayout(const float* from, const int64_t* extents, const LayerInfo& layer, int n,
                 float* to) {
  int64_t C = layer.shape[0], H = layer.rank == 3 ? layer.shape[1] : 1,
          W = layer.rank == 3 ? layer.shape[2] : 1;
  for (int64_t e = 0; e < n; ++e)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          *to++ = from[((e * extents[2] + y) * extents[1] + x) * extents[0] + c];
}

}  // namespace

void ModelBase::runLayerProgram(const LayerProgram& program, const float* x, int n, bool visitAll,
                                const std::function<void(const LayerCall&, const float*)>& done) {
  // Where each layer's feature map lives, and the call after which nothing
  // reads it: its slot is free for later calls then.
  std::vector<int> slotOf(info_.layerCount, -1), lastRead(info_.layerCount, -1);
  std::vector<const LayerCall*> callOf(info_.layerCount, nullptr);
  for (int i = 0; i < program.callCount; ++i)
    for (int s = 0; s < program.calls[i].sourceCount; ++s)
      if (program.calls[i].sources[s] >= 0) lastRead[program.calls[i].sources[s]] = i;
  std::vector<bool> busy(layerSlots_.size(), false);
  HostBuffer input(x, batchDims(info_.inputRank, info_.inputShape, n));
  std::vector<std::unique_ptr<HostBuffer>> buffers;
  std::vector<void*> arguments;
  for (int i = 0; i < program.callCount; ++i) {
    const LayerCall& call = program.calls[i];
    buffers.clear();
    arguments.clear();
    for (int s = 0; s < call.sourceCount; ++s) {
      int source = call.sources[s];
      if (source < 0) {
        arguments.push_back(input.get());
        continue;
      }
      const int64_t* e = callOf[source]->extents;
      buffers.push_back(std::make_unique<HostBuffer>(layerSlots_[slotOf[source]].data(),
                                                     std::vector<int64_t>{e[0], e[1], e[2], n}));
      arguments.push_back(buffers.back()->get());
    }
    for (int p = 0; p < call.paramCount; ++p) {
      int ref = call.params[p];
      buffers.push_back(ref >= 0 ? parameterBuffer(info_, params_, ref)
                                 : std::make_unique<HostBuffer>(prepared_[-1 - ref].data(),
                                                                preparedDims(info_, -1 - ref)));
      arguments.push_back(buffers.back()->get());
    }
    int slot = static_cast<int>(std::find(busy.begin(), busy.end(), false) - busy.begin());
    if (slot == static_cast<int>(busy.size())) {
      layerSlots_.emplace_back();
      busy.push_back(false);
    }
    busy[slot] = true;
    AlignedFloats& storage = layerSlots_[slot];
    size_t size = static_cast<size_t>(callElements(call)) * n;
    if (storage.size() < size) storage.resize(size);
    slotOf[call.layer] = slot;
    callOf[call.layer] = &call;
    buffers.push_back(std::make_unique<HostBuffer>(
        storage.data(),
        std::vector<int64_t>{call.extents[0], call.extents[1], call.extents[2], n}));
    arguments.push_back(buffers.back()->get());
    int status = call.function(arguments.data());
    if (status != 0)
      throw Error("forward of network '" + std::string(info_.name) + "' failed in layer '" +
                  info_.layers[call.layer].name + "' with Halide error " + std::to_string(status));
    if (visitAll || i == program.callCount - 1) done(call, storage.data());
    for (int s = 0; s < call.sourceCount; ++s) {
      int source = call.sources[s];
      if (source >= 0 && lastRead[source] == i) busy[slotOf[source]] = false;
    }
    if (lastRead[call.layer] < 0) busy[slot] = false;  // read by no later call
  }
}

ModelBase::ModelBase(const NetworkInfo& info, uint64_t seed) : info_(info) {
  installBufferCache();
  installDefaultThreadPool();
  if (info_.train) learningRate_ = info_.train->lr, dropoutSeed_ = info_.train->seed;
  params_.resize(info_.paramCount);
  for (int i = 0; i < info_.paramCount; ++i)
    params_[i].assign(elements(info_.params[i].shape, info_.params[i].rank), 0.0f);
  initialize(seed);
}

// The train step's buffers and argument list, built at the first step of a
// batch size and kept for the next steps of that size (an epoch's full
// batches and its last partial one): a step allocates nothing.
struct ModelBase::TrainBuffers {
  int batch = 0;
  std::vector<std::unique_ptr<HostBuffer>> buffers;
  std::vector<void*> arguments;
  HostBuffer* input = nullptr;
  HostBuffer* labels = nullptr;
  HostBuffer* output = nullptr;
  std::vector<HostBuffer*> params, outputs;
  uint32_t dropoutSeed = 0;
  float loss = 0;
  std::unique_ptr<HostBuffer> lossBuffer;
  // Per parameter, the optimizer's 1-D views (param, gradient, slots) and
  // its scalars, in TrainConfig::optimizerUpdate's order.
  struct Update {
    std::vector<std::unique_ptr<HostBuffer>> views;
    std::vector<void*> arguments;
  };
  std::vector<Update> updates;
  float lr = 0, momentum = 0, weightDecay = 0, beta1 = 0, beta2 = 0, eps = 0, correction1 = 0,
        correction2 = 0;
  bool nesterov = false;
};

// (input, parameters..., prepared tensors..., output): the input and the
// output set per call.
struct ModelBase::ForwardArguments {
  std::vector<std::unique_ptr<HostBuffer>> buffers;
  std::vector<void*> arguments;
};

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
  preparedValid_ = false;
}

void ModelBase::forward(const float* x, int n, float* out) {
  if (n < 1) throw Error("forward: n must be at least 1, got " + std::to_string(n));
  if (!x || !out) throw Error("forward: null input or output pointer");
  const LayerInfo& last = info_.layers[info_.layerCount - 1];
  if (!preparedValid_) prepareParameters();
  if (info_.forwardCalls) {
    int chunk = layerProgramChunk(*info_.forwardCalls);
    for (int start = 0; start < n; start += chunk) {
      int count = std::min(chunk, n - start);
      const LayerProgram& program = count == 1 ? *info_.forwardOneCalls : *info_.forwardCalls;
      runLayerProgram(program, x + start * info_.inputSize, count, false,
                      [&](const LayerCall& call, const float* values) {
                        toApiLayout(values, call.extents, last, count,
                                    out + start * info_.outputSize);
                      });
    }
  } else {
    std::vector<void*>& arguments = forwardArguments_->arguments;
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
        throw Error("forward of network '" + std::string(info_.name) +
                    "' failed with Halide error " + std::to_string(status));
    }
  }
  if (recordActivations_) {
    lastInput_.assign(x, x + static_cast<size_t>(n) * info_.inputSize);
    lastBatch_ = n;
  } else {
    lastBatch_ = 0;
  }
  activationsValid_ = false;
}

void ModelBase::prepareParameters() {
  prepared_.resize(2 * static_cast<size_t>(info_.prepareCallCount));
  for (int k = 0; k < info_.prepareCallCount; ++k) {
    const PrepareCall& call = info_.prepareCalls[k];
    std::vector<std::unique_ptr<HostBuffer>> buffers;
    std::vector<void*> arguments;
    for (int p = 0; p < call.paramCount; ++p) {
      buffers.push_back(parameterBuffer(info_, params_, call.params[p]));
      arguments.push_back(buffers.back()->get());
    }
    for (int t = 2 * k; t < 2 * k + 2; ++t) {
      std::vector<int64_t> dims = preparedDims(info_, t);
      prepared_[t].resize(
          static_cast<size_t>(elements(dims.data(), static_cast<int>(dims.size()))));
      buffers.push_back(std::make_unique<HostBuffer>(prepared_[t].data(), dims));
      arguments.push_back(buffers.back()->get());
    }
    int status = call.function(arguments.data());
    if (status != 0)
      throw Error("preparing the parameters of network '" + std::string(info_.name) + "' failed (" +
                  info_.params[call.params[0]].name + ") with Halide error " +
                  std::to_string(status));
  }
  preparedValid_ = true;
  if (info_.forwardCalls) return;  // layer calls take their arguments per call
  // The parameters' storage moves only when they are replaced (load), which
  // makes the prepared tensors stale too.
  forwardArguments_ = std::make_unique<ForwardArguments>();
  forwardArguments_->arguments = {nullptr};
  appendParameterBuffers(info_, params_, &prepared_, forwardArguments_->buffers,
                         forwardArguments_->arguments);
  forwardArguments_->arguments.push_back(nullptr);
}

void ModelBase::parametersChanged() {
  activationsValid_ = false;
  preparedValid_ = false;
}

void ModelBase::record_activations(bool on) {
  recordActivations_ = on;
  if (!on) {
    lastInput_ = {};
    lastBatch_ = 0;
  }
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
  preparedValid_ = false;
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
  preparedValid_ = false;
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

const TrainConfig& ModelBase::trainConfig() const {
  if (!info_.train)
    throw Error("network '" + std::string(info_.name) +
                "' has no training settings: its .net file needs a `train loss=...` line (and cnnc "
                "must run without --inference-only)");
  return *info_.train;
}

std::vector<StateTensor> ModelBase::optimizerState() {
  const TrainConfig& config = trainConfig();
  bool adam = std::string(config.optimizer) == "adam";
  const char* names[2] = {adam ? "exp_avg" : "momentum_buffer", "exp_avg_sq"};
  std::vector<StateTensor> state;
  for (int slot = 0; slot < (adam ? 2 : 1); ++slot) {
    slots_[slot].resize(info_.paramCount);
    for (int i = 0; i < info_.paramCount; ++i) {
      const ParamInfo& p = info_.params[i];
      if (!p.trainable) continue;
      slots_[slot][i].resize(params_[i].size(), 0.0f);
      state.push_back({std::string("optimizer.") + p.name + "." + names[slot],
                       std::vector<int64_t>(p.shape, p.shape + p.rank), &slots_[slot][i]});
    }
  }
  return state;
}

float ModelBase::train_step(const float* x, const int32_t* labels, int n) {
  if (std::string(trainConfig().loss) == "mse")
    throw Error("train_step: network '" + std::string(info_.name) +
                "' trains with mse and takes float targets, not labels");
  if (!labels) throw Error("train_step: null labels pointer");
  for (int i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= info_.outputSize)
      throw Error("train_step: label " + std::to_string(labels[i]) + " of example " +
                  std::to_string(i) + " is outside [0, " + std::to_string(info_.outputSize) + ")");
  return trainStepWith(x, labels, false, n);
}

float ModelBase::train_step(const float* x, const float* targets, int n) {
  if (std::string(trainConfig().loss) != "mse")
    throw Error("train_step: network '" + std::string(info_.name) + "' trains with " +
                trainConfig().loss + " and takes int32 labels, not float targets");
  if (!targets) throw Error("train_step: null targets pointer");
  return trainStepWith(x, targets, true, n);
}

float ModelBase::trainStepWith(const float* x, const void* labelsOrTargets, bool targets, int n) {
  const TrainConfig& config = trainConfig();
  if (n < 1) throw Error("train_step: n must be at least 1, got " + std::to_string(n));
  if (!x) throw Error("train_step: null input pointer");
  bool adam = std::string(config.optimizer) == "adam";
  const LayerInfo& last = info_.layers[info_.layerCount - 1];

  // Kept for a few batch sizes; more are rebuilt as needed.
  constexpr size_t kKeptBatchSizes = 4;
  auto found = std::find_if(trainBuffers_.begin(), trainBuffers_.end(),
                            [&](const std::unique_ptr<TrainBuffers>& b) { return b->batch == n; });
  trainOutputs_.resize(static_cast<size_t>(n) * info_.outputSize);
  if (found == trainBuffers_.end()) {
    optimizerState();  // the slots, zero at first
    stepOutputs_.resize(info_.paramCount);
    for (int i = 0; i < info_.paramCount; ++i) stepOutputs_[i].resize(params_[i].size());

    auto b = std::make_unique<TrainBuffers>();
    b->batch = n;
    auto add = [&](const float* data, std::vector<int64_t> dims) {
      b->buffers.push_back(std::make_unique<HostBuffer>(data, std::move(dims)));
      b->arguments.push_back(b->buffers.back()->get());
      return b->buffers.back().get();
    };
    b->input = add(x, batchDims(info_.inputRank, info_.inputShape, n));
    b->labels =
        add(nullptr, targets ? batchDims(last.rank, last.shape, n) : std::vector<int64_t>{n});
    if (!targets) b->labels->get()->type = halide_type_t(halide_type_int, 32, 1);
    for (int i = 0; i < info_.paramCount; ++i)
      b->params.push_back(
          add(params_[i].data(), reversed(info_.params[i].shape, info_.params[i].rank)));
    b->arguments.push_back(&b->dropoutSeed);
    b->lossBuffer = std::make_unique<HostBuffer>(&b->loss, std::vector<int64_t>{});
    b->arguments.push_back(b->lossBuffer->get());
    for (int i = 0; i < info_.paramCount; ++i)
      b->outputs.push_back(
          add(stepOutputs_[i].data(), reversed(info_.params[i].shape, info_.params[i].rank)));
    b->output = add(trainOutputs_.data(), batchDims(last.rank, last.shape, n));

    b->updates.resize(info_.paramCount);
    for (int i = 0; i < info_.paramCount; ++i) {
      if (!info_.params[i].trainable) continue;
      TrainBuffers::Update& u = b->updates[i];
      int64_t count = static_cast<int64_t>(params_[i].size());
      auto view = [&](auto& data) {
        u.views.push_back(std::make_unique<HostBuffer>(data.data(), std::vector<int64_t>{count}));
        u.arguments.push_back(u.views.back()->get());
      };
      view(params_[i]);
      view(stepOutputs_[i]);
      view(slots_[0][i]);
      if (adam) view(slots_[1][i]);
      if (adam)
        u.arguments.insert(u.arguments.end(), {&b->lr, &b->beta1, &b->beta2, &b->eps,
                                               &b->weightDecay, &b->correction1, &b->correction2});
      else
        u.arguments.insert(u.arguments.end(),
                           {&b->lr, &b->momentum, &b->weightDecay, &b->nesterov});
      // The outputs alias the inputs: the update is elementwise, in place.
      u.arguments.push_back(u.views[0]->get());
      u.arguments.push_back(u.views[2]->get());
      if (adam) u.arguments.push_back(u.views[3]->get());
    }
    if (trainBuffers_.size() == kKeptBatchSizes) trainBuffers_.erase(trainBuffers_.begin());
    trainBuffers_.push_back(std::move(b));
    found = trainBuffers_.end() - 1;
  }
  TrainBuffers& b = **found;
  // Parameters and optimizer state may have been replaced (load,
  // loadCheckpoint) since the last step, and the outputs resized by another
  // batch size's step.
  b.input->setHost(x);
  b.labels->setHost(labelsOrTargets);
  b.output->setHost(trainOutputs_.data());
  for (int i = 0; i < info_.paramCount; ++i) {
    b.params[i]->setHost(params_[i].data());
    if (!info_.params[i].trainable) continue;
    std::vector<std::unique_ptr<HostBuffer>>& views = b.updates[i].views;
    views[0]->setHost(params_[i].data());
    views[2]->setHost(slots_[0][i].data());
    if (adam) views[3]->setHost(slots_[1][i].data());
  }
  // A fresh dropout mask every step, reproducible from the seed.
  b.dropoutSeed =
      static_cast<uint32_t>(Random(dropoutSeed_ * 0x9E3779B97F4A7C15ull + steps_).next() >> 32);

  int status = config.trainStep(b.arguments.data());
  if (status != 0)
    throw Error("train step of network '" + std::string(info_.name) +
                "' failed with Halide error " + std::to_string(status));
  float loss = b.loss;

  ++steps_;
  b.lr = static_cast<float>(learningRate_);
  b.momentum = static_cast<float>(config.momentum);
  b.nesterov = config.nesterov;
  b.weightDecay = static_cast<float>(config.weightDecay);
  b.beta1 = static_cast<float>(config.beta1);
  b.beta2 = static_cast<float>(config.beta2);
  b.eps = static_cast<float>(config.eps);
  b.correction1 = static_cast<float>(1.0 - std::pow(config.beta1, static_cast<double>(steps_)));
  b.correction2 = static_cast<float>(1.0 - std::pow(config.beta2, static_cast<double>(steps_)));
  for (int i = 0; i < info_.paramCount; ++i) {
    if (!info_.params[i].trainable) {
      // The batchnorm's new running statistic.
      std::copy(stepOutputs_[i].begin(), stepOutputs_[i].end(), params_[i].begin());
      continue;
    }
    status = config.optimizerUpdate(b.updates[i].arguments.data());
    if (status != 0)
      throw Error(std::string("optimizer update of '") + info_.params[i].name +
                  "' failed with Halide error " + std::to_string(status));
  }
  activationsValid_ = false;
  preparedValid_ = false;
  return loss;
}

std::vector<float> ModelBase::activations(const std::string& layer) {
  int index = layerIndex(layer);
  if (lastBatch_ == 0)
    throw Error(recordActivations_ ? "activations: call forward first"
                                   : "activations: call record_activations(true) before forward");
  if (!activationsValid_ && info_.activationCalls) {
    activations_.assign(info_.layerCount, {});
    runLayerProgram(*info_.activationCalls, lastInput_.data(), lastBatch_, true,
                    [&](const LayerCall& call, const float* values) {
                      const LayerInfo& l = info_.layers[call.layer];
                      activations_[call.layer].resize(static_cast<size_t>(lastBatch_) *
                                                      elements(l.shape, l.rank));
                      toApiLayout(values, call.extents, l, lastBatch_,
                                  activations_[call.layer].data());
                    });
    activationsValid_ = true;
  }
  if (!activationsValid_) {
    HostBuffer input(lastInput_.data(), batchDims(info_.inputRank, info_.inputShape, lastBatch_));
    std::vector<std::unique_ptr<HostBuffer>> buffers;
    std::vector<void*> arguments = {input.get()};
    appendParameterBuffers(info_, params_, nullptr, buffers, arguments);
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
