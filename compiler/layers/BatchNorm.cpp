// batchnorm: per-channel normalization, as torch.nn.BatchNorm2d (images) or
// BatchNorm1d (flat vectors, one channel per feature).
#include "../LayerKinds.h"
#include "../Lowering.h"

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


// Inference: running statistics, y = x * scale(c) + shift(c). Training mode
// (batch statistics) is lowered with the backward pass.
LoweredLayer batchNormForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  auto [scale, shift] = batchNormScaleShift(ctx.layer, ctx.params);
  LoweredLayer out;
  out.value.func = Halide::Func(ctx.layer.name);
  out.value.func(c, x, y, n) = ctx.inputs[0]->func(c, x, y, n) * scale(c) + shift(c);
  out.value.shape = ctx.layer.outputShape;
  out.stages["scale"] = scale;
  out.stages["shift"] = shift;
  return out;
}

}  // namespace cnnc
