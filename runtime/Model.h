// The generic part of every generated network library: parameters,
// initialization, safetensors load/save, and calls into the network's
// compiled Halide pipelines. A generated header embeds this file and derives
// its `Model` from ModelBase, describing the network with constexpr tables.
// Plain C++17: no Halide headers.
#ifndef CNNC_RUNTIME_MODEL_H
#define CNNC_RUNTIME_MODEL_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <new>
#include <memory>
#include <string>
#include <vector>

#include "Dataset.h"
#include "Error.h"
#include "Training.h"

namespace cnnc {

// A compiled pipeline's `_argv` entry point: buffers in argument order.
using PipelineEntry = int (*)(void** arguments);

struct ParamInfo {
  const char* name;       // "conv1.weight", as PyTorch names it
  int rank;
  int64_t shape[4];       // PyTorch's layout
  bool trainable;         // false for batchnorm running statistics
  const char* init;       // the `init=` scheme, or "ones"/"zeros" for batchnorm
  int64_t fanIn, fanOut;  // for the init scheme
};

struct LayerInfo {
  const char* name;
  const char* kind;
  int rank;           // 3 for CxHxW, 1 for flat
  int64_t shape[3];
};

// The .net file's `train` settings and the pipelines that train the network.
//
// trainStep's arguments, in order: the input batch (NCHW); the labels (int32,
// n) or, for `mse`, the targets (n x outputs); every parameter of the table
// (PyTorch layout); the dropout seed (uint32 scalar); then the outputs: the
// mean loss (a 0-d float), the gradient of every trainable parameter (its
// layout), for every batchnorm its new running_mean and running_var, and the
// network's output for the batch (n x outputs).
//
// optimizerUpdate updates one parameter in place, elementwise over its
// flattened elements (1-D buffers; scalars float, nesterov bool): SGD
// (param, grad, velocity, lr, momentum, weight_decay, nesterov) -> (param,
// velocity), velocity starting at zero; Adam (param, grad, exp_avg,
// exp_avg_sq, lr, beta1, beta2, eps, weight_decay, bias_correction1,
// bias_correction2) -> (param, exp_avg, exp_avg_sq).
struct TrainConfig {
  const char* loss;        // "cross_entropy" or "mse"
  const char* optimizer;   // "sgd" or "adam"
  double lr, momentum;
  bool nesterov;
  double beta1, beta2, eps, weightDecay;
  const char* lrSchedule;  // "constant", "step" or "cosine"
  int64_t stepSize;
  double gamma;
  int64_t batch, epochs;
  uint64_t seed;
  PipelineEntry trainStep;
  PipelineEntry optimizerUpdate;
};

// A forward entry point split into one compiled function per stored layer
// (the compiler's LayerPipelines.h), run by the runtime in layer order.
constexpr int kMaxCallSources = 16, kMaxCallParams = 16;
struct LayerCall {
  // (sources..., parameters..., output): feature maps in the internal
  // layout, halide dimensions (c, x, y, n), dense.
  PipelineEntry function;
  int layer;                       // the layer it computes
  int sourceCount;
  int sources[kMaxCallSources];    // layers it reads; -1: the network input (NCHW)
  int paramCount;
  int params[kMaxCallParams];      // indices into NetworkInfo::params
  int64_t extents[3];              // (c, x, y) it writes: the shape, or more
};
struct LayerProgram {
  const LayerCall* calls;
  int callCount;
};

// A conv's or dense layer's parameters as the forward entry points take them, computed only
// when the parameters change (the compiler's PreparedParams.h): prepare
// call k writes prepared tensors 2k (the packed weights, `extents` in
// halide order) and 2k + 1 (the bias, extents[0] * extents[4] floats). A
// forward entry point takes every parameter of the table, then every
// prepared tensor; a LayerCall's params name prepared tensor t as -1 - t.
struct PrepareCall {
  PipelineEntry function;  // (params..., packed weights, bias)
  int paramCount;
  int params[kMaxCallParams];  // indices into NetworkInfo::params
  int64_t extents[5];
};

struct NetworkInfo {
  const char* name;
  const char* architectureHash;
  int inputRank;             // 3 (CxHxW) or 1 (flat)
  int64_t inputShape[3];
  int64_t inputSize;         // floats in one example
  int64_t outputSize;        // floats in one example's output
  int outputRank;
  const ParamInfo* params;
  int paramCount;
  const LayerInfo* layers;
  int layerCount;
  PipelineEntry forward;      // any batch
  PipelineEntry forwardOne;   // batch 1, scheduled for latency
  PipelineEntry activations;  // every layer's output, for inspection
  const TrainConfig* train;   // null when the .net file has no `train`
  // The entry points above split into layer calls (then those are null).
  const LayerProgram* forwardCalls;
  const LayerProgram* forwardOneCalls;
  const LayerProgram* activationCalls;
  const PrepareCall* prepareCalls;  // null when there are none
  int prepareCallCount;
};

// Storage that a pipeline writes and then reads back (a gradient it
// accumulates): Halide loads such a buffer with aligned vector instructions,
// as if it were one of its own allocations, so it must start on a vector
// boundary. 128 bytes covers every x86 vector width.
template <typename T>
struct VectorAlignedAllocator {
  using value_type = T;
  static constexpr std::size_t kAlignment = 128;
  VectorAlignedAllocator() = default;
  template <typename U>
  VectorAlignedAllocator(const VectorAlignedAllocator<U>&) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kAlignment)));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(kAlignment)); }
  template <typename U>
  bool operator==(const VectorAlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const VectorAlignedAllocator<U>&) const { return false; }
};
using AlignedFloats = std::vector<float, VectorAlignedAllocator<float>>;

// A named tensor of the optimizer's state, for checkpoints:
// "optimizer.conv1.weight.momentum_buffer", ".exp_avg", ".exp_avg_sq".
struct StateTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float>* data;
};

class ModelBase {
 public:
  ModelBase(const NetworkInfo& info, uint64_t seed);
  virtual ~ModelBase();
  ModelBase(const ModelBase&) = delete;
  ModelBase& operator=(const ModelBase&) = delete;

  // safetensors with PyTorch's names and layouts; save is atomic.
  void load(const std::string& path);
  void save(const std::string& path) const;

  // x: n examples in NCHW order; out: n x outputSize floats. Any n >= 1.
  void forward(const float* x, int n, float* out);
  // The argmax of one example's output.
  int predict(const float* example);

  // Parameters by name, in PyTorch's layout (writable: a change takes effect
  // at the next call; after writing through a pointer kept from earlier,
  // before a forward since, call parametersChanged()).
  std::vector<std::string> parameterNames() const;
  float* parameter(const std::string& name);
  const float* parameter(const std::string& name) const;
  std::vector<int64_t> parameterShape(const std::string& name) const;
  int64_t parameterCount() const;  // trainable elements
  // Parameters were written in place: the next forward re-derives what it
  // computes from them once (packed conv weights, folded batchnorms).
  void parametersChanged();

  // A layer's output for the examples of the last `forward`, in NCHW order
  // (n x C x H x W, or n x features): for visualization and deep features.
  // Needs record_activations(true) before that forward: recording keeps a
  // copy of every forward's input (off by default, since on big inputs the
  // copy costs a good share of an inference).
  void record_activations(bool on);
  std::vector<float> activations(const std::string& layer);
  std::vector<int64_t> activationShape(const std::string& layer) const;  // with the batch first

  const NetworkInfo& info() const { return info_; }

  // ---- Training (needs the .net file's `train`; otherwise cnnc::Error) ----

  // One optimizer step on a minibatch of n examples (x in NCHW): forward,
  // backward and update, all generated code; returns the mean loss before
  // the step. Labels are class indices (cross_entropy); `mse` networks take
  // targets, n x outputs floats.
  float train_step(const float* x, const int32_t* labels, int n);
  float train_step(const float* x, const float* targets, int n);
  // The network's output for the last train_step's batch (n x outputs), as
  // the step's forward computed it (training mode).
  const std::vector<float>& trainOutputs() const { return trainOutputs_; }

  // The learning rate the next step uses (the lr schedule sets it per epoch).
  double learningRate() const { return learningRate_; }
  void setLearningRate(double lr) { learningRate_ = lr; }
  // Optimizer steps taken so far (Adam's bias correction counts them).
  int64_t optimizerSteps() const { return steps_; }
  void setOptimizerSteps(int64_t steps) { steps_ = steps; }
  // The optimizer's state tensors, created with zeros if not yet there.
  std::vector<StateTensor> optimizerState();

  // The training loop: epochs over `train` in seeded shuffled minibatches
  // (the last partial batch included), `test` evaluated after each epoch,
  // the lr schedule stepped per epoch, checkpoints, resume, progress and the
  // metrics CSV per `options`. A NaN or infinite loss stops training with a
  // cnnc::Error; the last good checkpoint stays. Returns one row per epoch run.
  std::vector<EpochMetrics> train(const Dataset& train, const Dataset* test, const TrainOptions& options = {});
  // Mean loss, accuracy and confusion matrix of the network on `data`.
  Evaluation evaluate(const Dataset& data, int batch = 256);

  // A checkpoint: the weights, the optimizer state and the epoch count, in
  // one safetensors file (the optimizer's tensors under "optimizer."),
  // written atomically. loadCheckpoint returns the epochs completed.
  void saveCheckpoint(const std::string& path, int epochsDone) const;
  int loadCheckpoint(const std::string& path);

 protected:
  // Re-draws every parameter from `seed` per the init rules.
  void initialize(uint64_t seed);
  int paramIndex(const std::string& name) const;
  int layerIndex(const std::string& name) const;

  const NetworkInfo& info_;
  std::vector<std::vector<float>> params_;
  bool recordActivations_ = false;
  std::vector<float> lastInput_;  // the last forward's examples, for activations()
  int lastBatch_ = 0;             // their count: 0 when not recorded
  std::vector<std::vector<float>> activations_;  // computed on demand
  bool activationsValid_ = false;

  // Runs a split entry point on n examples (x: NCHW). `done` gets the last
  // call's feature map (with visitAll, every call's), in the internal layout,
  // before its storage is reused.
  void runLayerProgram(const LayerProgram& program, const float* x, int n, bool visitAll,
                       const std::function<void(const LayerCall&, const float*)>& done);
  std::vector<AlignedFloats> layerSlots_;  // feature maps between layer calls, reused
  // The prepared tensors (PrepareCall), recomputed when stale, and a whole
  // forward entry point's arguments over them and the parameters (kept: at
  // batch 1 building them per call measured 6% of LeNet-5's time).
  void prepareParameters();
  std::vector<AlignedFloats> prepared_;
  bool preparedValid_ = false;
  struct ForwardArguments;
  std::unique_ptr<ForwardArguments> forwardArguments_;

  // Training state.
  const TrainConfig& trainConfig() const;  // throws without `train`
  float trainStepWith(const float* x, const void* labelsOrTargets, bool targets, int n);
  double learningRate_ = 0;
  int64_t steps_ = 0;
  uint64_t dropoutSeed_ = 0;
  // Per parameter: the train step's output for it (a gradient, or a new
  // batchnorm running statistic), and the optimizer's slots (SGD: velocity;
  // Adam: exp_avg, exp_avg_sq), allocated at the first step.
  std::vector<AlignedFloats> stepOutputs_;
  std::vector<std::vector<float>> slots_[2];
  std::vector<float> trainOutputs_;
  struct TrainBuffers;  // a step's halide buffers, kept per batch size
  std::vector<std::unique_ptr<TrainBuffers>> trainBuffers_;
};

}  // namespace cnnc

#endif  // CNNC_RUNTIME_MODEL_H
