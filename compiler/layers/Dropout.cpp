// dropout: zeroes a `rate` share of elements in training, scaling the rest by
// 1/(1-rate); the identity at inference.
#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

namespace cnnc {

static std::optional<Shape> dropoutShape(ShapeContext& ctx) {
  return ctx.input();
}

LayerKindInfo dropoutKind() {
  KeySpec rate{"rate", ValueType::Float, "0.5", 0, 1, true, false};
  return {LayerKind::Dropout, "dropout", {rate}, 1, 1, dropoutShape, nullptr, nullptr};
}


// Inference: the identity. Training: the input times the keep-scale of a
// seeded mask (inverted dropout, as PyTorch).
LoweredLayer dropoutForward(const ForwardContext& ctx) {
  LoweredLayer out;
  out.value = *ctx.inputs[0];
  out.value.shape = ctx.layer.outputShape;
  if (ctx.purpose == Purpose::Training && ctx.layer.floatAttr("rate") > 0) {
    const auto& [c, x, y, n] = layerVars();
    out.value.func = Halide::Func(ctx.layer.name);
    out.value.func(c, x, y, n) =
        ctx.inputs[0]->func(c, x, y, n) * dropoutScale(ctx.layer, ctx.layerIndex, ctx.dropoutSeed);
  }
  return out;
}

// The upstream gradient through the same mask.
LayerGradients dropoutBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const ForwardContext& f = ctx.forward;
  LayerGradients grads;
  Halide::Func in(f.layer.name + "_grad_in");
  if (f.layer.floatAttr("rate") > 0)
    in(c, x, y, n) = ctx.gradOutput(c, x, y, n) * dropoutScale(f.layer, f.layerIndex, f.dropoutSeed);
  else
    in(c, x, y, n) = ctx.gradOutput(c, x, y, n);
  grads.inputs = {in};
  return grads;
}

}  // namespace cnnc
