// Lowering: the IR to Halide Funcs. Each layer kind's forward algorithm lives
// in its file under layers/ (next to its shape rule); this file holds what
// they share and the walk over the network. Schedules live in schedules/.
//
// Layout: every activation is a 4-D Func f(c, x, y, n) with channels
// innermost (vectorizing over channels suits convolutions); a flat vector of
// F features is f(c, 0, 0, n) with c < F. Parameters enter in PyTorch's
// layout, so a Halide buffer's dimensions are PyTorch's reversed: a conv
// weight [K, C/g, kh, kw] is w(kx, ky, ci, k).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <Halide.h>

#include "IR.h"

namespace cnnc {

struct LayerVars {
  Halide::Var c{"c"}, x{"x"}, y{"y"}, n{"n"};
};
const LayerVars& layerVars();

enum class Purpose { Inference, Training };

// One layer's output as Halide sees it.
struct LoweredValue {
  Halide::Func func;  // f(c, x, y, n)
  Shape shape;        // the IR's shape
};

// A conv's or dense layer's parameters as the inference entry points take
// them, prepared once per change of the parameters (the runtime's
// PrepareCalls) instead of on every call: the weights packed as
// (kv, ci, kx, ky, kb) for output channel kb * block + kv, zero past the
// filters, and the bias, both with a folded batchnorm applied. A dense
// layer's are a 1x1 conv's over its flattened input: (unit, feature, 0, 0,
// 0), units innermost. `block` and `blocks` cover every channel that any
// target's schedule computes.
struct PreparedLayer {
  int layer = -1;      // the conv or dense layer, or -1: not prepared
  int batchNorm = -1;  // the batchnorm folded into it, or -1
  int block = 0, blocks = 0;
  // A conv computed by Winograd's F(2x2, 3x3): the weights are their 4x4
  // transforms, (kv, ci, i, j, kb).
  bool winograd = false;
  int channels() const { return block * blocks; }  // the bias's extent
  // The packed weights' extents, halide order: (block, C/g, kw, kh, blocks),
  // 4x4 for winograd.
  std::vector<int> weightExtents(const Network& net) const;
};

struct ForwardContext {
  const Network& net;
  const Layer& layer;
  int layerIndex;
  std::vector<const LoweredValue*> inputs;
  std::vector<Halide::Func> params;  // in ParamSpec order, PyTorch layout
  Purpose purpose;
  // Inference folds a batchnorm into the convolution before it: the
  // batchnorm's parameters, when this conv absorbs one.
  std::vector<Halide::Func> foldedBatchNorm;
  const Layer* foldedBatchNormLayer = nullptr;
  // A conv's packed weights in blocks of this many output channels, the
  // register tile's (0: one block): a tile's weights then stream
  // contiguously. A data layout the schedule picks (convWeightBlocks).
  int weightBlock = 0;
  // A layer whose parameters come prepared: the two prepared tensors.
  const PreparedLayer* prepared = nullptr;
  Halide::Func preparedWeights, preparedBias;
  // Training: the examples in the batch (batch statistics) and the step's
  // dropout seed.
  Halide::Expr batch;
  Halide::Expr dropoutSeed;
};

// What a layer's forward algorithm produces: its output and the named
// intermediate Funcs that its schedule needs to see.
struct LoweredLayer {
  LoweredValue value;
  std::map<std::string, Halide::Func> stages;
  std::map<std::string, Halide::RDom> reductions;  // a stage's reduction domain
};

// Forward algorithms, one per kind (defined in layers/).
LoweredLayer conv2dForward(const ForwardContext& ctx);
// A 3x3 stride-1 conv by Winograd's F(2x2, 3x3) (layers/Conv2DWinograd.cpp),
// for a layer that fitsWinograd whose prepared weights are winogradFilters'
// (PreparedLayer::winograd); `input` and `bias` as conv2dForward reads them.
LoweredLayer conv2dWinogradForward(const ForwardContext& ctx, const Halide::Func& input,
                                   const Halide::Func& bias);
// Packed conv weights (kv, ci, kx, ky, kb) -> their transforms (kv, ci, i, j, kb), 4x4 each.
Halide::Func winogradFilters(const Halide::Func& packed, const std::string& name);
LoweredLayer maxPoolForward(const ForwardContext& ctx);
LoweredLayer avgPoolForward(const ForwardContext& ctx);
LoweredLayer globalAvgPoolForward(const ForwardContext& ctx);
LoweredLayer flattenForward(const ForwardContext& ctx);
LoweredLayer denseForward(const ForwardContext& ctx);
LoweredLayer batchNormForward(const ForwardContext& ctx);
LoweredLayer dropoutForward(const ForwardContext& ctx);
LoweredLayer addForward(const ForwardContext& ctx);
LoweredLayer concatForward(const ForwardContext& ctx);
LoweredLayer elementwiseForward(const ForwardContext& ctx);  // relu, leaky_relu, sigmoid, tanh
LoweredLayer softmaxForward(const ForwardContext& ctx);

// Helpers shared by the algorithms.
Halide::Expr applyActivation(const Halide::Expr& v, const std::string& activation,
                             double alpha = 0.01);
// `in` read with `value` outside [0, W) x [0, H), for padded windows.
Halide::Func padded(const LoweredValue& in, Halide::Expr value, const std::string& name);
// Feature `f` of one example of `in`, in PyTorch's flatten order: for an
// image, f = (c*H + y)*W + x; for a vector, its element f.
Halide::Expr flatFeature(const LoweredValue& in, const Halide::Expr& f, const Halide::Expr& n);
// The inverse of flatFeature: a flat Func g(f, 0, 0, n) read as the layout
// of `shape` (the identity when `shape` is flat).
Halide::Func unflattened(const Halide::Func& flat, const Shape& shape, const std::string& name);
// The batchnorm's per-channel scale and shift in inference:
// y = x * scale(c) + shift(c).
std::pair<Halide::Func, Halide::Func> batchNormScaleShift(const Layer& bn,
                                                          const std::vector<Halide::Func>& params);

// The whole network's forward pass over an NCHW input.
struct LoweredNetwork {
  Halide::ImageParam input;                // NCHW: (w, h, c, n), or (features, n)
  LoweredValue inputValue;                 // the input in the internal layout
  std::vector<Halide::ImageParam> params;  // every ParamSpec of every layer, in order
  std::vector<LoweredLayer> layers;        // internal layout
  std::vector<bool> folded;                // batchnorms folded into their conv
  // Layers whose consumers read them from an argument of their own (one
  // pipeline per layer, LayerPipelines.h): `layers[i]` still computes the
  // layer, from its own inputs; undefined for the other layers.
  std::vector<Halide::ImageParam> storedInputs;
  std::vector<size_t> paramOffsets;  // per layer: the index of its first in `params`
  // Per prepared layer (in layer order): its packed weights, then its bias.
  std::vector<Halide::ImageParam> preparedParams;
  std::vector<int> preparedOffsets;  // per layer: its first in `preparedParams`, or -1
  // A layer's output in the API's layout: NCHW (w, h, c, n), or (c, n) when flat.
  Halide::Func apiOutput(int layerIndex) const;
  // A forward pipeline's arguments: the input, every parameter, then every
  // prepared tensor.
  std::vector<Halide::Argument> arguments() const;
};

// Pins a buffer argument's dimensions to the layout the runtime passes: dense,
// starting at 0, with `shape`'s extents (NCHW, or features); the batch,
// last, stays free.
void pinApiLayout(Halide::OutputImageParam buffer, const Shape& shape);

// `foldBatchNorms` (inference only) folds batchnorms into the convs before
// them; `dropoutSeed` (training only, uint32) seeds the dropout masks.
// `separate` (inference only; empty: none) marks the layers read back from
// LoweredNetwork::storedInputs: (c, x, y, n), channels innermost.
// `weightBlocks` (empty: none) gives each layer's ForwardContext::weightBlock.
// `prepared` (inference with folding only; empty: none), per layer: the
// convs and dense layers that take prepared parameters (LoweredNetwork::preparedParams).
LoweredNetwork lowerNetwork(const Network& net, Purpose purpose, bool foldBatchNorms = true,
                            Halide::Expr dropoutSeed = Halide::Expr(),
                            const std::vector<bool>& separate = {},
                            const std::vector<int>& weightBlocks = {},
                            const std::vector<PreparedLayer>& prepared = {});

// Which batchnorms inference folds into the convolution before them: for
// each layer, the conv it is folded into, or -1.
std::vector<int> foldableBatchNorms(const Network& net);

// Dropout's keep-scale in training: 1/(1-rate) where the element is kept,
// 0 where dropped, from a hash of the seed, the layer and the element.
Halide::Expr dropoutScale(const Layer& layer, int layerIndex, const Halide::Expr& seed);

// Halide's buffer dimensions of a parameter: PyTorch's shape reversed.
std::vector<int> halideDims(const ParamSpec& spec);

}  // namespace cnnc
