// global_avgpool: the mean of each channel over the whole image.
#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

namespace cnnc {

static std::optional<Shape> globalAvgPoolShape(ShapeContext& ctx) {
  if (!ctx.requireImage()) return std::nullopt;
  return Shape{{ctx.input().channels(), 1, 1}};
}

static double globalAvgPoolFlops(const Layer&, const std::vector<Shape>& inputs) {
  return double(inputs[0].elements());
}

LayerKindInfo globalAvgPoolKind() {
  return {LayerKind::GlobalAvgPool, "global_avgpool", {}, 1, 1, globalAvgPoolShape, nullptr,
          globalAvgPoolFlops};
}


LoweredLayer globalAvgPoolForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const LoweredValue& in = *ctx.inputs[0];
  int w = static_cast<int>(in.shape.width()), h = static_cast<int>(in.shape.height());
  Halide::RDom r(0, w, 0, h, "r");
  LoweredLayer out;
  out.value.func = Halide::Func(ctx.layer.name);
  out.value.func(c, x, y, n) = Halide::sum(in.func(c, r.x, r.y, n)) * (1.0f / (w * h));
  out.value.shape = ctx.layer.outputShape;
  return out;
}

// Every position of a channel receives an equal share of its gradient.
LayerGradients globalAvgPoolBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Shape& in = ctx.forward.inputs[0]->shape;
  Halide::Func grad(ctx.forward.layer.name + "_grad_in");
  grad(c, x, y, n) = ctx.gradOutput(c, 0, 0, n) * (1.0f / static_cast<float>(in.height() * in.width()));
  LayerGradients grads;
  grads.inputs = {grad};
  return grads;
}

}  // namespace cnnc
