// batchnorm: per-channel normalization, as torch.nn.BatchNorm2d (images) or
// BatchNorm1d (flat vectors, one channel per feature).
#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

namespace cnnc {

static std::optional<Shape> batchNormShape(ShapeContext& ctx) {
  return ctx.input();
}

static std::vector<ParamSpec> batchNormParams(const Layer&, const std::vector<Shape>& inputs) {
  int64_t channels = inputs[0].channels();
  return {{"weight", {channels}},
          {"bias", {channels}},
          {"running_mean", {channels}, false},
          {"running_var", {channels}, false}};
}

static double batchNormFlops(const Layer& layer, const std::vector<Shape>&) {
  return 2.0 * double(layer.outputShape.elements());  // a scale and a shift per element
}

LayerKindInfo batchNormKind() {
  KeySpec eps{"eps", ValueType::Float, "1e-5", 0, 1, false, true};
  KeySpec momentum{"momentum", ValueType::Float, "0.1", 0, 1};
  return {LayerKind::BatchNorm, "batchnorm",     {eps, momentum}, 1, 1,
          batchNormShape,       batchNormParams, batchNormFlops};
}


// The reduction over every position of a channel in the batch: (x, y, n)
// for images, n alone for flat vectors (stored as (c, 0, 0, n)).
static Halide::RDom channelPositions(const Shape& shape, const Halide::Expr& batch, const std::string& name) {
  int h = shape.isImage() ? static_cast<int>(shape.height()) : 1, w = shape.isImage() ? static_cast<int>(shape.width()) : 1;
  return Halide::RDom(0, w, 0, h, 0, batch, name);
}

// Inference: running statistics, y = x * scale(c) + shift(c). Training:
// batch statistics (the biased variance normalizes, as PyTorch), with the
// running statistics' new values computed beside.
LoweredLayer batchNormForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  LoweredLayer out;
  out.value.func = Halide::Func(ctx.layer.name);
  out.value.shape = ctx.layer.outputShape;
  const Halide::Func& in = ctx.inputs[0]->func;
  if (ctx.purpose == Purpose::Inference) {
    auto [scale, shift] = batchNormScaleShift(ctx.layer, ctx.params);
    out.value.func(c, x, y, n) = in(c, x, y, n) * scale(c) + shift(c);
    out.stages["scale"] = scale;
    out.stages["shift"] = shift;
    return out;
  }
  const std::string& name = ctx.layer.name;
  Halide::RDom r = channelPositions(ctx.inputs[0]->shape, ctx.batch, name + "_r");
  Halide::Expr positions = Halide::cast<float>(r.x.extent() * r.y.extent() * ctx.batch);
  Halide::Func mean(name + "_mean"), variance(name + "_variance"), invStd(name + "_inv_std");
  mean(c) = 0.0f;
  mean(c) += in(c, r.x, r.y, r.z);
  Halide::Func meanValue(name + "_mean_value");
  meanValue(c) = mean(c) / positions;
  variance(c) = 0.0f;
  Halide::Expr centered = in(c, r.x, r.y, r.z) - meanValue(c);
  variance(c) += centered * centered;
  Halide::Func varianceValue(name + "_variance_value");
  varianceValue(c) = variance(c) / positions;
  float eps = static_cast<float>(ctx.layer.floatAttr("eps"));
  invStd(c) = 1.0f / Halide::sqrt(varianceValue(c) + eps);
  Halide::Func normalized(name + "_normalized");
  normalized(c, x, y, n) = (in(c, x, y, n) - meanValue(c)) * invStd(c);
  out.value.func(c, x, y, n) = normalized(c, x, y, n) * ctx.params[0](c) + ctx.params[1](c);

  // PyTorch's running update: the unbiased variance, weighted by momentum.
  float momentum = static_cast<float>(ctx.layer.floatAttr("momentum"));
  Halide::Func runningMean(name + "_new_running_mean"), runningVar(name + "_new_running_var");
  runningMean(c) = (1.0f - momentum) * ctx.params[2](c) + momentum * meanValue(c);
  Halide::Expr unbiased = variance(c) / Halide::max(positions - 1.0f, 1.0f);
  runningVar(c) = (1.0f - momentum) * ctx.params[3](c) + momentum * unbiased;
  out.stages["sum"] = mean;
  out.stages["mean"] = meanValue;
  out.stages["squares"] = variance;
  out.stages["variance"] = varianceValue;
  out.stages["inv_std"] = invStd;
  out.stages["normalized"] = normalized;
  out.stages["new_running_mean"] = runningMean;
  out.stages["new_running_var"] = runningVar;
  return out;
}

// With x^ the normalized input and M positions per channel:
// dgamma = sum g x^, dbeta = sum g, dx = gamma/std (g - dbeta/M - x^ dgamma/M).
// The running statistics' "gradients" are their new values.
LayerGradients batchNormBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const ForwardContext& f = ctx.forward;
  const std::string& name = f.layer.name;
  const Halide::Func& g = ctx.gradOutput;
  Halide::Func normalized = ctx.lowered.stages.at("normalized");
  Halide::RDom r = channelPositions(f.inputs[0]->shape, ctx.batch, name + "_grad_r");
  Halide::Expr positions = Halide::cast<float>(r.x.extent() * r.y.extent() * ctx.batch);
  Halide::Func gradGamma(name + "_grad_weight"), gradBeta(name + "_grad_bias");
  gradGamma(c) = 0.0f;
  gradGamma(c) += g(c, r.x, r.y, r.z) * normalized(c, r.x, r.y, r.z);
  gradBeta(c) = 0.0f;
  gradBeta(c) += g(c, r.x, r.y, r.z);
  Halide::Func in(name + "_grad_in");
  Halide::Expr scale = f.params[0](c) * ctx.lowered.stages.at("inv_std")(c);
  in(c, x, y, n) = scale * (g(c, x, y, n) - gradBeta(c) / positions -
                            normalized(c, x, y, n) * gradGamma(c) / positions);
  LayerGradients grads;
  grads.inputs = {in};
  grads.params = {gradGamma, gradBeta, ctx.lowered.stages.at("new_running_mean"),
                  ctx.lowered.stages.at("new_running_var")};
  grads.reductions["grad_weight"] = r;
  return grads;
}

}  // namespace cnnc
