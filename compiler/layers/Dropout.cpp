// dropout: zeroes a `rate` share of elements in training, scaling the rest by
// 1/(1-rate); the identity at inference.
#include "../LayerKinds.h"
#include "../Lowering.h"

namespace cnnc {

static std::optional<Shape> dropoutShape(ShapeContext& ctx) {
  return ctx.input();
}

LayerKindInfo dropoutKind() {
  KeySpec rate{"rate", ValueType::Float, "0.5", 0, 1, true, false};
  return {LayerKind::Dropout, "dropout", {rate}, 1, 1, dropoutShape, nullptr, nullptr};
}


// Inference: the identity.
LoweredLayer dropoutForward(const ForwardContext& ctx) {
  LoweredLayer out;
  out.value = *ctx.inputs[0];
  out.value.shape = ctx.layer.outputShape;
  return out;
}

}  // namespace cnnc
