// flatten: CxHxW to a vector in C, H, W order (row-major, as PyTorch).
#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

namespace cnnc {

static std::optional<Shape> flattenShape(ShapeContext& ctx) {
  return Shape{{ctx.input().elements()}};
}

LayerKindInfo flattenKind() {
  return {LayerKind::Flatten, "flatten", {}, 1, 1, flattenShape, nullptr, nullptr};
}

LoweredLayer flattenForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const LoweredValue& in = *ctx.inputs[0];
  LoweredLayer out;
  out.value.shape = ctx.layer.outputShape;
  if (!in.shape.isImage()) {
    out.value.func = in.func;
    return out;
  }
  out.value.func = Halide::Func(ctx.layer.name);
  out.value.func(c, x, y, n) = flatFeature(in, c, n);
  return out;
}

// The gradient read back in the image's layout.
LayerGradients flattenBackward(const BackwardContext& ctx) {
  LayerGradients grads;
  grads.inputs = {unflattened(ctx.gradOutput, ctx.forward.inputs[0]->shape, ctx.forward.layer.name + "_grad_in")};
  return grads;
}

}  // namespace cnnc
