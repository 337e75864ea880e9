// Elementwise activations (relu, leaky_relu, sigmoid, tanh) and softmax over
// channels: the shape is the input's.
#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

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

LayerGradients elementwiseBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.forward.layer;
  double alpha = layer.kind == LayerKind::LeakyReLU ? layer.floatAttr("alpha") : 0.0;
  Halide::Func in(layer.name + "_grad_in");
  in(c, x, y, n) = activationGradient(ctx.gradOutput(c, x, y, n), ctx.lowered.value.func(c, x, y, n),
                                      ctx.forward.inputs[0]->func(c, x, y, n), kindName(layer.kind), alpha);
  LayerGradients grads;
  grads.inputs = {in};
  return grads;
}

// With s the softmax: dx = s * (g - sum_c g s). (A trailing softmax under
// cross_entropy is fused with the loss instead.)
LayerGradients softmaxBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const std::string& name = ctx.forward.layer.name;
  const Halide::Func& s = ctx.lowered.value.func;
  Halide::RDom r(0, static_cast<int>(ctx.forward.layer.outputShape.channels()), name + "_grad_r");
  Halide::Func dot(name + "_grad_dot"), in(name + "_grad_in");
  dot(x, y, n) = Halide::sum(ctx.gradOutput(r, x, y, n) * s(r, x, y, n));
  in(c, x, y, n) = s(c, x, y, n) * (ctx.gradOutput(c, x, y, n) - dot(x, y, n));
  LayerGradients grads;
  grads.inputs = {in};
  grads.stages["dot"] = dot;
  return grads;
}

}  // namespace cnnc
