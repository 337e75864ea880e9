// add: the elementwise sum of two or more equally shaped layers (residual
// connections), with an optional fused activation.
#include <fmt/format.h>

#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

namespace cnnc {

static std::optional<Shape> addShape(ShapeContext& ctx) {
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    if (ctx.inputs[i] != ctx.inputs[0])
      return ctx.error("from",
                       fmt::format("add '{}': inputs differ in shape: '{}' is {} but '{}' is {}",
                                   ctx.layer.name, ctx.inputNames[0], ctx.inputs[0].str(),
                                   ctx.inputNames[i], ctx.inputs[i].str()));
  }
  return ctx.input();
}

static double addFlops(const Layer& layer, const std::vector<Shape>& inputs) {
  return double(inputs.size() - 1) * double(layer.outputShape.elements());
}

LayerKindInfo addKind() {
  return {LayerKind::Add, "add",   {activationKey()}, 2, std::numeric_limits<int>::max(),
          addShape,       nullptr, addFlops};
}


static Halide::Expr sumOfInputs(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  Halide::Expr sum = ctx.inputs[0]->func(c, x, y, n);
  for (size_t i = 1; i < ctx.inputs.size(); ++i) sum = sum + ctx.inputs[i]->func(c, x, y, n);
  return sum;
}

LoweredLayer addForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  Halide::Expr sum = sumOfInputs(ctx);
  LoweredLayer out;
  out.value.func = Halide::Func(ctx.layer.name);
  out.value.func(c, x, y, n) = applyActivation(sum, ctx.layer.identAttr("activation"));
  out.value.shape = ctx.layer.outputShape;
  return out;
}

// Every input receives the gradient through the fused activation.
LayerGradients addBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const ForwardContext& f = ctx.forward;
  Halide::Func sum(f.layer.name + "_grad_sum");
  sum(c, x, y, n) = activationGradient(ctx.gradOutput(c, x, y, n), ctx.lowered.value.func(c, x, y, n),
                                       sumOfInputs(f), f.layer.identAttr("activation"));
  LayerGradients grads;
  grads.inputs.assign(f.inputs.size(), sum);
  return grads;
}

}  // namespace cnnc
