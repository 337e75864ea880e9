// Elementwise activations (relu, leaky_relu, sigmoid, tanh) and softmax over
// channels: the shape is the input's.
#include "../LayerKinds.h"
#include "../Lowering.h"

namespace cnnc {

static std::optional<Shape> sameShape(ShapeContext& ctx) {
  return ctx.input();
}

static double perElement(const Layer& layer, const std::vector<Shape>&) {
  return double(layer.outputShape.elements());
}

LayerKindInfo reluKind() {
  return {LayerKind::ReLU, "relu", {}, 1, 1, sameShape, nullptr, perElement};
}

LayerKindInfo leakyReluKind() {
  KeySpec alpha{"alpha", ValueType::Float, "0.01", -1e30, 1e30};
  return {LayerKind::LeakyReLU, "leaky_relu", {alpha}, 1, 1, sameShape, nullptr, perElement};
}

LayerKindInfo sigmoidKind() {
  return {LayerKind::Sigmoid, "sigmoid", {}, 1, 1, sameShape, nullptr, perElement};
}

LayerKindInfo tanhKind() {
  return {LayerKind::Tanh, "tanh", {}, 1, 1, sameShape, nullptr, perElement};
}

LayerKindInfo softmaxKind() {
  return {LayerKind::Softmax, "softmax", {}, 1, 1, sameShape, nullptr, perElement};
}


LoweredLayer elementwiseForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.layer;
  double alpha = layer.kind == LayerKind::LeakyReLU ? layer.floatAttr("alpha") : 0.0;
  LoweredLayer out;
  out.value.func = Halide::Func(layer.name);
  out.value.func(c, x, y, n) = applyActivation(ctx.inputs[0]->func(c, x, y, n), kindName(layer.kind), alpha);
  out.value.shape = layer.outputShape;
  return out;
}

// Softmax over channels, stable: exp(v - max) / sum exp(v - max).
LoweredLayer softmaxForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const LoweredValue& in = *ctx.inputs[0];
  Halide::RDom r(0, static_cast<int>(in.shape.channels()), "r");
  Halide::Func top(ctx.layer.name + "_max"), exps(ctx.layer.name + "_exp"), total(ctx.layer.name + "_total");
  top(x, y, n) = Halide::maximum(in.func(r, x, y, n));
  exps(c, x, y, n) = Halide::exp(in.func(c, x, y, n) - top(x, y, n));
  total(x, y, n) = Halide::sum(exps(r, x, y, n));
  LoweredLayer out;
  out.value.func = Halide::Func(ctx.layer.name);
  out.value.func(c, x, y, n) = exps(c, x, y, n) / total(x, y, n);
  out.value.shape = ctx.layer.outputShape;
  out.stages["max"] = top;
  out.stages["exp"] = exps;
  out.stages["total"] = total;
  return out;
}

}  // namespace cnnc
