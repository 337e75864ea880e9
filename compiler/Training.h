// Training lowering: the forward pass in training mode (batchnorm on batch
// statistics, dropout masks), the loss, and the hand-derived backward pass
// of every layer, walked from the loss back to the input. Each kind's
// backward algorithm lives in its file under layers/, next to its forward.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <Halide.h>

#include "Lowering.h"

namespace cnnc {

// What a layer's backward algorithm sees: its forward context and lowered
// forward, and the gradient of the loss with respect to its output, in the
// internal layout g(c, x, y, n).
struct BackwardContext {
  const ForwardContext& forward;
  const LoweredLayer& lowered;
  Halide::Func gradOutput;
  Halide::Expr batch;  // examples in the batch
};

// A layer's gradients: one per input (internal layout) and one per
// parameter (the parameter's own Halide dimensions, PyTorch's layout
// reversed; for batchnorm's running statistics, their new values), plus
// named stages for its schedule.
struct LayerGradients {
  std::vector<Halide::Func> inputs;
  std::vector<Halide::Func> params;
  std::map<std::string, Halide::Func> stages;
  std::map<std::string, Halide::RDom> reductions;
  // An input gradient computed as a forward convolution (a conv's, at
  // stride 1), with the layer that describes it, for the conv schedule.
  std::optional<std::pair<Layer, LoweredLayer>> asConvolution;
};

// Backward algorithms, one per kind (defined in layers/).
LayerGradients conv2dBackward(const BackwardContext& ctx);
LayerGradients maxPoolBackward(const BackwardContext& ctx);
LayerGradients avgPoolBackward(const BackwardContext& ctx);
LayerGradients globalAvgPoolBackward(const BackwardContext& ctx);
LayerGradients flattenBackward(const BackwardContext& ctx);
LayerGradients denseBackward(const BackwardContext& ctx);
LayerGradients batchNormBackward(const BackwardContext& ctx);
LayerGradients dropoutBackward(const BackwardContext& ctx);
LayerGradients addBackward(const BackwardContext& ctx);
LayerGradients concatBackward(const BackwardContext& ctx);
LayerGradients elementwiseBackward(const BackwardContext& ctx);  // relu, leaky_relu, sigmoid, tanh
LayerGradients softmaxBackward(const BackwardContext& ctx);

// The gradient through an activation y = act(z): g * act'(z), from the
// output y where it tells the slope (relu, sigmoid, tanh, leaky_relu with
// alpha > 0), else from the pre-activation z.
Halide::Expr activationGradient(const Halide::Expr& g, const Halide::Expr& y, const Halide::Expr& z,
                                const std::string& activation, double alpha = 0.01);

struct LoweredTraining {
  LoweredNetwork network;         // the forward pass, in training mode
  Halide::ImageParam labels;      // cross_entropy: int32 (n)
  Halide::ImageParam targets;     // mse: float, the output's API layout
  Halide::Param<uint32_t> dropoutSeed{"dropout_seed"};
  Halide::Func loss;              // loss(): the mean over the batch, as PyTorch's reduction='mean'
  Halide::Func output;            // the network's output in the API layout
  // Per entry of network.params: the gradient (trainable parameters), the
  // new running statistic (batchnorm's running_mean and running_var), in
  // the parameter's Halide dimensions.
  std::vector<Halide::Func> paramOutputs;
  Halide::Func inputGradient;     // dL/d(input), the input's API layout (for tests)
  Halide::Func inputGradientInternal;  // the same in the internal layout
  std::vector<Halide::Func> lossStages;  // the loss's per-example reductions
  std::vector<LayerGradients> layers;
  std::vector<Halide::Func> gradOutputs;  // per layer: dL/d(its output), internal layout
};

// Needs net.train (the loss). `lossName` overrides its loss when not empty.
LoweredTraining lowerTraining(const Network& net, const std::string& lossName = "");

// The train step's arguments in the order of TrainConfig::trainStep (runtime/Model.h).
std::vector<Halide::Argument> trainStepArguments(const LoweredTraining& training);
// Its outputs in that order: the loss, the gradients and new running
// statistics (in parameter order, skipping none), the output.
std::vector<Halide::Func> trainStepOutputs(const LoweredTraining& training);

}  // namespace cnnc
