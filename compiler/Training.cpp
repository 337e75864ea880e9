#include "Training.h"

#include <fmt/format.h>

#include "Diagnostics.h"

namespace cnnc {

using Halide::Expr;
using Halide::Func;

Expr activationGradient(const Expr& g, const Expr& y, const Expr& z, const std::string& activation, double alpha) {
  if (activation == "none") return g;
  if (activation == "relu") return Halide::select(y > 0.0f, g, 0.0f);
  if (activation == "leaky_relu") {
    Expr positive = alpha > 0 ? y > 0.0f : z > 0.0f;
    return Halide::select(positive, g, g * static_cast<float>(alpha));
  }
  if (activation == "sigmoid") return g * y * (1.0f - y);
  if (activation == "tanh") return g * (1.0f - y * y);
  internalError(__FILE__, __LINE__, "unknown activation " + activation);
}

namespace {

LayerGradients backwardOf(const BackwardContext& ctx) {
  switch (ctx.forward.layer.kind) {
    case LayerKind::Conv2D: return conv2dBackward(ctx);
    case LayerKind::MaxPool: return maxPoolBackward(ctx);
    case LayerKind::AvgPool: return avgPoolBackward(ctx);
    case LayerKind::GlobalAvgPool: return globalAvgPoolBackward(ctx);
    case LayerKind::Flatten: return flattenBackward(ctx);
    case LayerKind::Dense: return denseBackward(ctx);
    case LayerKind::BatchNorm: return batchNormBackward(ctx);
    case LayerKind::Dropout: return dropoutBackward(ctx);
    case LayerKind::Add: return addBackward(ctx);
    case LayerKind::Concat: return concatBackward(ctx);
    case LayerKind::ReLU:
    case LayerKind::LeakyReLU:
    case LayerKind::Sigmoid:
    case LayerKind::Tanh: return elementwiseBackward(ctx);
    case LayerKind::Softmax: return softmaxBackward(ctx);
  }
  internalError(__FILE__, __LINE__, "layer kind without a backward algorithm");
}

// Adds `grad` to what a value has received so far (a value read by several
// layers sums their gradients).
void accumulate(Func& total, const Func& grad, const std::string& name) {
  if (!total.defined()) {
    total = grad;
    return;
  }
  const auto& [c, x, y, n] = layerVars();
  Func sum(name);
  sum(c, x, y, n) = total(c, x, y, n) + grad(c, x, y, n);
  total = sum;
}

// The parameter's Halide dimensions as Vars, for a Func over its domain.
std::vector<Halide::Var> paramVars(size_t rank) {
  std::vector<Halide::Var> vars;
  for (size_t d = 0; d < rank; ++d) vars.emplace_back(fmt::format("p{}", d));
  return vars;
}

}  // namespace

LoweredTraining lowerTraining(const Network& net, const std::string& lossName) {
  CNNC_INTERNAL_ASSERT(net.train.has_value() || !lossName.empty(), "training a network without train settings");
  const auto& [c, x, y, n] = layerVars();
  LoweredTraining training;
  training.network = lowerNetwork(net, Purpose::Training, false, training.dropoutSeed);
  LoweredNetwork& lowered = training.network;
  int last = static_cast<int>(net.layers.size()) - 1;
  Expr batch = lowered.input.dim(net.inputShape.isImage() ? 3 : 1).extent();
  std::string loss = lossName.empty() ? net.train->identAttr("loss") : lossName;
  const Shape& outShape = net.outputShape();

  training.output = lowered.apiOutput(last);
  std::vector<Func> grads(net.layers.size());
  Func inputGrad;
  if (loss == "cross_entropy") {
    // From the logits: those before a trailing softmax, fused with it.
    bool fused = net.layers[last].kind == LayerKind::Softmax;
    int logitsLayer = fused ? net.layers[last].inputs[0] : last;
    const Func& logits =
        logitsLayer == kInputIndex ? lowered.inputValue.func : lowered.layers[logitsLayer].value.func;
    int classes = static_cast<int>(outShape.channels());
    training.labels = Halide::ImageParam(Halide::Int(32), 1, "labels");
    Expr label = Halide::clamp(training.labels(n), 0, classes - 1);
    Halide::RDom r(0, classes, "loss_r");
    Func top("loss_max"), total("loss_total"), logSumExp("loss_log_sum_exp");
    top(n) = Halide::maximum(logits(r, 0, 0, n));
    total(n) = Halide::sum(Halide::exp(logits(r, 0, 0, n) - top(n)));
    logSumExp(n) = top(n) + Halide::log(total(n));
    Halide::RDom examples(0, batch, "loss_rn");
    training.loss = Func("loss");
    training.loss() = Halide::sum(logSumExp(examples) - logits(Halide::clamp(training.labels(examples), 0, classes - 1), 0, 0, examples));
    training.loss() = training.loss() / Halide::cast<float>(batch);
    Func gradLogits("loss_grad");
    gradLogits(c, x, y, n) = (Halide::exp(logits(c, 0, 0, n) - top(n)) / total(n) -
                              Halide::select(c == label, 1.0f, 0.0f)) /
                             Halide::cast<float>(batch);
    (logitsLayer == kInputIndex ? inputGrad : grads[logitsLayer]) = gradLogits;
    training.lossStages = {top, total, logSumExp};
  } else {
    CNNC_INTERNAL_ASSERT(loss == "mse", "unknown loss " + loss);
    training.targets = Halide::ImageParam(Halide::Float(32), outShape.isImage() ? 4 : 2, "targets");
    const Func& out = lowered.layers[last].value.func;
    Expr target = outShape.isImage() ? training.targets(x, y, c, n) : training.targets(c, n);
    Func diff("loss_diff");
    diff(c, x, y, n) = out(c, x, y, n) - target;
    float count = static_cast<float>(outShape.elements());
    Expr elements = Halide::cast<float>(batch) * count;
    int w = outShape.isImage() ? static_cast<int>(outShape.width()) : 1;
    int h = outShape.isImage() ? static_cast<int>(outShape.height()) : 1;
    Halide::RDom r(0, static_cast<int>(outShape.channels()), 0, w, 0, h, 0, batch, "loss_r");
    Expr d = diff(r.x, r.y, r.z, r.w);
    training.loss = Func("loss");
    // Summed in double: a float sum over millions of elements drifts.
    training.loss() = Halide::cast<float>(Halide::sum(Halide::cast<double>(d * d)) / Halide::cast<double>(elements));
    Func gradOut("loss_grad");
    gradOut(c, x, y, n) = diff(c, x, y, n) * 2.0f / elements;
    grads[last] = gradOut;
    training.lossStages = {diff};
  }

  // Parameters of each layer start at this index of lowered.params.
  std::vector<size_t> firstParam(net.layers.size());
  for (size_t i = 0, p = 0; i < net.layers.size(); p += net.layers[i].params.size(), ++i) firstParam[i] = p;
  training.paramOutputs.assign(lowered.params.size(), Func());
  training.layers.resize(net.layers.size());

  for (int i = last; i >= 0; --i) {
    const Layer& layer = net.layers[i];
    if (!grads[i].defined()) continue;  // the loss does not depend on it (or a fused softmax)
    ForwardContext fctx{net, layer, i, {}, {}, Purpose::Training};
    for (int in : layer.inputs)
      fctx.inputs.push_back(in == kInputIndex ? &lowered.inputValue : &lowered.layers[in].value);
    for (size_t p = 0; p < layer.params.size(); ++p) fctx.params.push_back(lowered.params[firstParam[i] + p]);
    fctx.batch = batch;
    fctx.dropoutSeed = training.dropoutSeed;
    BackwardContext bctx{fctx, lowered.layers[i], grads[i], batch};
    LayerGradients layerGrads = backwardOf(bctx);
    for (size_t j = 0; j < layer.inputs.size(); ++j) {
      int in = layer.inputs[j];
      std::string name = fmt::format("{}_grad_total{}", layer.name, j);
      accumulate(in == kInputIndex ? inputGrad : grads[in], layerGrads.inputs[j], name);
    }
    for (size_t p = 0; p < layerGrads.params.size(); ++p) training.paramOutputs[firstParam[i] + p] = layerGrads.params[p];
    training.layers[i] = std::move(layerGrads);
  }
  training.gradOutputs = grads;

  // Parameters the loss does not reach: zero gradients, statistics unchanged.
  for (size_t i = 0; i < net.layers.size(); ++i)
    for (size_t p = 0; p < net.layers[i].params.size(); ++p) {
      Func& out = training.paramOutputs[firstParam[i] + p];
      if (out.defined()) continue;
      const Halide::ImageParam& param = lowered.params[firstParam[i] + p];
      std::vector<Halide::Var> vars = paramVars(param.dimensions());
      std::vector<Expr> args(vars.begin(), vars.end());
      out = Func(fmt::format("{}_{}_unreached", net.layers[i].name, net.layers[i].params[p].name));
      out(vars) = net.layers[i].params[p].trainable ? Expr(0.0f) : param(args);
    }

  // dL/d(input) in the input's API layout.
  training.inputGradient = Func("input_grad");
  const Shape& inShape = net.inputShape;
  if (!inputGrad.defined()) {
    inputGrad = Func("input_grad_zero");
    inputGrad(c, x, y, n) = 0.0f;
  }
  if (inShape.isImage())
    training.inputGradient(x, y, c, n) = inputGrad(c, x, y, n);
  else
    training.inputGradient(c, n) = inputGrad(c, 0, 0, n);
  training.inputGradientInternal = inputGrad;
  return training;
}

std::vector<Halide::Argument> trainStepArguments(const LoweredTraining& training) {
  std::vector<Halide::Argument> args = {training.network.input};
  args.push_back(training.labels.defined() ? training.labels : training.targets);
  for (const auto& param : training.network.params) args.push_back(param);
  args.push_back(training.dropoutSeed);
  return args;
}

std::vector<Func> trainStepOutputs(const LoweredTraining& training) {
  std::vector<Func> outputs = {training.loss};
  outputs.insert(outputs.end(), training.paramOutputs.begin(), training.paramOutputs.end());
  outputs.push_back(training.output);
  return outputs;
}

}  // namespace cnnc
