#include "Lowering.h"

#include <fmt/format.h>

#include "Diagnostics.h"

namespace cnnc {

using Halide::Expr;
using Halide::Func;

const LayerVars& layerVars() {
  static const LayerVars vars;
  return vars;
}

Expr applyActivation(const Expr& v, const std::string& activation, double alpha) {
  if (activation == "none") return v;
  if (activation == "relu") return Halide::max(v, 0.0f);
  if (activation == "leaky_relu") return Halide::select(v > 0.0f, v, v * static_cast<float>(alpha));
  if (activation == "sigmoid") return 1.0f / (1.0f + Halide::exp(-v));
  if (activation == "tanh") return Halide::tanh(v);
  internalError(__FILE__, __LINE__, "unknown activation " + activation);
}

Func padded(const LoweredValue& in, Expr value, const std::string& name) {
  const auto& [c, x, y, n] = layerVars();
  Expr w = static_cast<int>(in.shape.width()), h = static_cast<int>(in.shape.height());
  Func f(name);
  Expr inside = x >= 0 && x < w && y >= 0 && y < h;
  f(c, x, y, n) = Halide::select(
      inside, in.func(c, Halide::clamp(x, 0, w - 1), Halide::clamp(y, 0, h - 1), n), value);
  return f;
}

Expr flatFeature(const LoweredValue& in, const Expr& f, const Expr& n) {
  if (!in.shape.isImage()) return in.func(f, 0, 0, n);
  int h = static_cast<int>(in.shape.height()), w = static_cast<int>(in.shape.width());
  return in.func(f / (h * w), f % w, (f / w) % h, n);
}

Func unflattened(const Func& flat, const Shape& shape, const std::string& name) {
  const auto& [c, x, y, n] = layerVars();
  Func f(name);
  if (!shape.isImage()) {
    f(c, x, y, n) = flat(c, x, y, n);
    return f;
  }
  int h = static_cast<int>(shape.height()), w = static_cast<int>(shape.width());
  f(c, x, y, n) = flat((c * h + y) * w + x, 0, 0, n);
  return f;
}

std::pair<Func, Func> batchNormScaleShift(const Layer& bn, const std::vector<Func>& params) {
  const Halide::Var& c = layerVars().c;
  const Func &gamma = params[0], &beta = params[1], &mean = params[2], &var = params[3];
  float eps = static_cast<float>(bn.floatAttr("eps"));
  Func scale(bn.name + "_scale"), shift(bn.name + "_shift");
  scale(c) = gamma(c) / Halide::sqrt(var(c) + eps);
  shift(c) = beta(c) - mean(c) * scale(c);
  return {scale, shift};
}

Expr dropoutScale(const Layer& layer, int layerIndex, const Expr& seed) {
  const auto& [c, x, y, n] = layerVars();
  const Shape& shape = layer.outputShape;
  int C = static_cast<int>(shape.channels());
  int H = shape.isImage() ? static_cast<int>(shape.height()) : 1,
      W = shape.isImage() ? static_cast<int>(shape.width()) : 1;
  // murmur3's finalizer over the seed, the layer and the element's NCHW
  // index: cheap, and independent across elements and steps.
  auto mix = [](Expr h) {
    h = h ^ (h >> 16);
    h = h * Expr(uint32_t(0x85ebca6b));
    h = h ^ (h >> 13);
    h = h * Expr(uint32_t(0xc2b2ae35));
    return h ^ (h >> 16);
  };
  Expr index = Halide::cast<uint32_t>(((n * C + c) * H + y) * W + x);
  Expr h = mix(seed ^ Expr(uint32_t(0x9E3779B9u * static_cast<uint32_t>(layerIndex + 1))));
  h = mix(h ^ index);
  Expr uniform = Halide::cast<float>(h >> 8) * (1.0f / 16777216.0f);
  float rate = static_cast<float>(layer.floatAttr("rate"));
  return Halide::select(uniform >= rate, 1.0f / (1.0f - rate), 0.0f);
}

std::vector<int> PreparedLayer::weightExtents(const Network& net) const {
  const std::vector<int64_t>& w = net.layers[layer].params[0].shape;  // [K, C/g, kh, kw]
  if (net.layers[layer].kind == LayerKind::Dense)
    return {block, static_cast<int>(w[1]), 1, 1, blocks};
  if (winograd) return {block, static_cast<int>(w[1]), 4, 4, blocks};
  return {block, static_cast<int>(w[1]), static_cast<int>(w[3]), static_cast<int>(w[2]), blocks};
}

std::vector<int> halideDims(const ParamSpec& spec) {
  std::vector<int> dims(spec.shape.rbegin(), spec.shape.rend());
  return dims;
}

static LoweredLayer forwardOf(const ForwardContext& ctx) {
  switch (ctx.layer.kind) {
    case LayerKind::Conv2D:
      return conv2dForward(ctx);
    case LayerKind::MaxPool:
      return maxPoolForward(ctx);
    case LayerKind::AvgPool:
      return avgPoolForward(ctx);
    case LayerKind::GlobalAvgPool:
      return globalAvgPoolForward(ctx);
    case LayerKind::Flatten:
      return flattenForward(ctx);
    case LayerKind::Dense:
      return denseForward(ctx);
    case LayerKind::BatchNorm:
      return batchNormForward(ctx);
    case LayerKind::Dropout:
      return dropoutForward(ctx);
    case LayerKind::Add:
      return addForward(ctx);
    case LayerKind::Concat:
      return concatForward(ctx);
    case LayerKind::ReLU:
    case LayerKind::LeakyReLU:
    case LayerKind::Sigmoid:
    case LayerKind::Tanh:
      return elementwiseForward(ctx);
    case LayerKind::Softmax:
      return softmaxForward(ctx);
  }
  internalError(__FILE__, __LINE__, "layer kind without a forward algorithm");
}

// Inference folds a batchnorm into the convolution that feeds only it (and
// applies no activation of its own before it).
std::vector<int> foldableBatchNorms(const Network& net) {
  std::vector<int> consumers(net.layers.size(), 0);
  for (const Layer& layer : net.layers)
    for (int i : layer.inputs)
      if (i != kInputIndex) ++consumers[i];
  std::vector<int> foldedInto(net.layers.size(), -1);
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& layer = net.layers[i];
    if (layer.kind != LayerKind::BatchNorm || layer.inputs[0] == kInputIndex) continue;
    int producer = layer.inputs[0];
    const Layer& conv = net.layers[producer];
    bool isLastLayer = producer == static_cast<int>(net.layers.size()) - 1;
    if (conv.kind == LayerKind::Conv2D && conv.identAttr("activation") == "none" &&
        consumers[producer] == 1 && !isLastLayer)
      foldedInto[i] = producer;
  }
  return foldedInto;
}

LoweredNetwork lowerNetwork(const Network& net, Purpose purpose, bool foldBatchNorms,
                            Expr dropoutSeed, const std::vector<bool>& separate,
                            const std::vector<int>& weightBlocks,
                            const std::vector<PreparedLayer>& prepared) {
  const auto& [c, x, y, n] = layerVars();
  LoweredNetwork lowered;
  const Shape& inShape = net.inputShape;
  lowered.input = Halide::ImageParam(Halide::Float(32), inShape.isImage() ? 4 : 2, "input");

  // The network input in the internal layout.
  LoweredValue input;
  input.shape = inShape;
  input.func = Func("input_internal");
  if (inShape.isImage()) {
    input.func(c, x, y, n) = lowered.input(x, y, c, n);
    for (int d = 0; d < 3; ++d)
      lowered.input.dim(d).set_bounds(0, static_cast<int>(inShape.dims[2 - d]));
  } else {
    input.func(c, x, y, n) = lowered.input(c, n);
    lowered.input.dim(0).set_bounds(0, static_cast<int>(inShape.dims[0]));
  }
  lowered.inputValue = input;

  // Parameters, as buffers with PyTorch's layout and exact bounds.
  std::vector<std::vector<Func>> layerParams(net.layers.size());
  for (size_t i = 0; i < net.layers.size(); ++i) {
    lowered.paramOffsets.push_back(lowered.params.size());
    for (const ParamSpec& spec : net.layers[i].params) {
      std::vector<int> dims = halideDims(spec);
      Halide::ImageParam param(Halide::Float(32), static_cast<int>(dims.size()),
                               net.layers[i].name + "_" + spec.name);
      for (size_t d = 0; d < dims.size(); ++d) param.dim(d).set_bounds(0, dims[d]);
      lowered.params.push_back(param);
      layerParams[i].push_back(param);
    }
  }

  // Prepared parameters, with the layouts the runtime passes.
  lowered.preparedOffsets.assign(net.layers.size(), -1);
  for (size_t i = 0; i < prepared.size(); ++i) {
    const PreparedLayer& p = prepared[i];
    if (p.layer < 0) continue;
    lowered.preparedOffsets[i] = static_cast<int>(lowered.preparedParams.size());
    Halide::ImageParam weights(Halide::Float(32), 5, net.layers[i].name + "_prepared_weights"),
        bias(Halide::Float(32), 1, net.layers[i].name + "_prepared_bias");
    std::vector<int> extents = p.weightExtents(net);
    for (int d = 0; d < 5; ++d) weights.dim(d).set_bounds(0, extents[d]);
    bias.dim(0).set_bounds(0, p.channels());
    lowered.preparedParams.push_back(weights);
    lowered.preparedParams.push_back(bias);
  }

  std::vector<int> foldedInto = purpose == Purpose::Inference && foldBatchNorms
                                    ? foldableBatchNorms(net)
                                    : std::vector<int>(net.layers.size(), -1);
  lowered.folded.assign(net.layers.size(), false);
  std::vector<int> absorbs(net.layers.size(), -1);  // conv -> the batchnorm it absorbs
  for (size_t i = 0; i < net.layers.size(); ++i)
    if (foldedInto[i] >= 0) absorbs[foldedInto[i]] = static_cast<int>(i), lowered.folded[i] = true;

  lowered.layers.reserve(net.layers.size());
  lowered.storedInputs.resize(net.layers.size());
  std::vector<LoweredValue> storedValues(net.layers.size());
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& layer = net.layers[i];
    ForwardContext ctx{net, layer, static_cast<int>(i), {}, layerParams[i], purpose};
    ctx.batch = lowered.input.dim(inShape.isImage() ? 3 : 1).extent();
    ctx.dropoutSeed = dropoutSeed;
    if (i < weightBlocks.size()) ctx.weightBlock = weightBlocks[i];
    for (int in : layer.inputs)
      ctx.inputs.push_back(in == kInputIndex                    ? &lowered.inputValue
                           : lowered.storedInputs[in].defined() ? &storedValues[in]
                                                                : &lowered.layers[in].value);
    if (lowered.folded[i]) {
      // The conv before it already applied it.
      LoweredLayer identity;
      identity.value = *ctx.inputs[0];
      lowered.layers.push_back(identity);
      continue;
    }
    if (lowered.preparedOffsets[i] >= 0) {
      ctx.prepared = &prepared[i];
      ctx.preparedWeights = lowered.preparedParams[lowered.preparedOffsets[i]];
      ctx.preparedBias = lowered.preparedParams[lowered.preparedOffsets[i] + 1];
    } else if (absorbs[i] >= 0) {
      ctx.foldedBatchNorm = layerParams[absorbs[i]];
      ctx.foldedBatchNormLayer = &net.layers[absorbs[i]];
    }
    lowered.layers.push_back(forwardOf(ctx));
    CNNC_INTERNAL_ASSERT(lowered.layers.back().value.shape == layer.outputShape,
                         fmt::format("lowering of '{}' disagrees with its shape", layer.name));
    if (i < separate.size() && separate[i]) {
      Halide::ImageParam stored(Halide::Float(32), 4, layer.name + "_stored");
      for (int d = 0; d < 4; ++d) stored.dim(d).set_min(0);
      lowered.storedInputs[i] = stored;
      storedValues[i].shape = layer.outputShape;
      storedValues[i].func = Func(layer.name + "_read");
      storedValues[i].func(c, x, y, n) = stored(c, x, y, n);
    }
  }
  return lowered;
}

Func LoweredNetwork::apiOutput(int layerIndex) const {
  const auto& [c, x, y, n] = layerVars();
  const LoweredValue& value = layers[layerIndex].value;
  Func out(fmt::format("output{}", layerIndex));
  if (value.shape.isImage())
    out(x, y, c, n) = value.func(c, x, y, n);
  else
    out(c, n) = value.func(c, 0, 0, n);
  return out;
}

std::vector<Halide::Argument> LoweredNetwork::arguments() const {
  std::vector<Halide::Argument> args = {input};
  for (const auto& param : params) args.push_back(param);
  for (const auto& param : preparedParams) args.push_back(param);
  return args;
}

void pinApiLayout(Halide::OutputImageParam buffer, const Shape& shape) {
  std::vector<int> extents;
  if (shape.isImage())
    extents = {static_cast<int>(shape.width()), static_cast<int>(shape.height()),
               static_cast<int>(shape.channels())};
  else
    extents = {static_cast<int>(shape.dims[0])};
  Halide::Expr stride = 1;
  for (size_t d = 0; d < extents.size(); ++d) {
    buffer.dim(d).set_bounds(0, extents[d]).set_stride(stride);
    stride = stride * extents[d];
  }
  int last = static_cast<int>(extents.size());
  buffer.dim(last).set_min(0).set_stride(stride);
}

}  // namespace cnnc
