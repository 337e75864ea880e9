// Conv and dense parameters prepared once per change instead of on every
// forward call.
//
// Why: a forward pass that packs its conv weights (and folds batchnorms into
// them) repacks the same values on every call: 14% of ResNet-50's batch-1
// time and 10% of W2d's. A dense layer's weights are read with units
// innermost, PyTorch's layout transposed. The inference entry points instead
// take each such layer's packed weights and bias as arguments (PreparedLayer,
// Lowering.h); one small "prepare" function per layer computes them from the
// parameters, and the runtime calls those only when the parameters have
// changed (load, initialization, a train step, a write through
// Model::parameter).
#pragma once

#include <string>
#include <vector>

#include <Halide.h>

#include "IR.h"
#include "Lowering.h"
#include "ScheduleFile.h"

namespace cnnc {

// Per layer, how the inference entry points take a conv's or dense layer's
// parameters: every conv is prepared, in blocks of the register tile of the
// first target's batch-N schedule, and every dense layer in blocks of the
// widest unit tile of any target; both cover the channels of every target's
// and both entry points' schedules (`split`: the entry points are layer
// functions, LayerPipelines.h).
std::vector<PreparedLayer> planPreparedLayers(const Network& net,
                                              const ScheduleOverrides& overrides,
                                              const std::vector<Halide::Target>& targets,
                                              bool split);

// The prepare functions: the layer (index) each is built from, the first of
// those it serves, and its C symbol. Layers of equal kinds, shapes, folds
// and layouts share one.
struct PrepareFunction {
  int layer;
  std::string symbol;
};
std::vector<PrepareFunction> prepareFunctions(const Network& net,
                                              const std::vector<PreparedLayer>& prepared,
                                              const std::string& prefix);
// Per prepared layer (in layer order), its index in prepareFunctions.
std::vector<int> prepareFunctionOf(const Network& net, const std::vector<PreparedLayer>& prepared);

// A prepare function for `target`: (the layer's parameters, then the folded
// batchnorm's) -> (packed weights, bias), in PreparedLayer's layouts.
struct PreparePipeline {
  Halide::Pipeline pipeline;
  std::vector<Halide::ImageParam> params;  // its arguments
};
PreparePipeline preparePipeline(const Network& net, const std::vector<PreparedLayer>& prepared,
                                int layer, const Halide::Target& target);
Halide::Module prepareModule(const Network& net, const std::vector<PreparedLayer>& prepared,
                             int layer, const Halide::Target& target, const std::string& name);

// The parameters of `layers` as a layer function takes them, as the
// header's LayerCall::params: an index into the parameter table, or
// -1 - t for prepared tensor t (prepared layer k's weights are 2k, its
// bias 2k + 1). A prepared layer's own parameters and its folded batchnorm's are
// replaced by its two prepared tensors.
std::vector<int> callParameters(const Network& net, const std::vector<PreparedLayer>& prepared,
                                const std::vector<int>& layers);

}  // namespace cnnc
