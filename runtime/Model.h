// The generic part of every generated network library: parameters,
// initialization, safetensors load/save, and calls into the network's
// compiled Halide pipelines. A generated header embeds this file and derives
// its `Model` from ModelBase, describing the network with constexpr tables.
// Plain C++17: no Halide headers.
#ifndef CNNC_RUNTIME_MODEL_H
#define CNNC_RUNTIME_MODEL_H

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "Error.h"

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
  // at the next call).
  std::vector<std::string> parameterNames() const;
  float* parameter(const std::string& name);
  const float* parameter(const std::string& name) const;
  std::vector<int64_t> parameterShape(const std::string& name) const;
  int64_t parameterCount() const;  // trainable elements

  // A layer's output for the examples of the last `forward`, in NCHW order
  // (n x C x H x W, or n x features): for visualization and deep features.
  std::vector<float> activations(const std::string& layer);
  std::vector<int64_t> activationShape(const std::string& layer) const;  // with the batch first

  const NetworkInfo& info() const { return info_; }

 protected:
  // Re-draws every parameter from `seed` per the init rules.
  void initialize(uint64_t seed);
  int paramIndex(const std::string& name) const;
  int layerIndex(const std::string& name) const;

  const NetworkInfo& info_;
  std::vector<std::vector<float>> params_;
  std::vector<float> lastInput_;  // the last forward's examples, for activations()
  int lastBatch_ = 0;
  std::vector<std::vector<float>> activations_;  // computed on demand
  bool activationsValid_ = false;
};

}  // namespace cnnc

#endif  // CNNC_RUNTIME_MODEL_H
