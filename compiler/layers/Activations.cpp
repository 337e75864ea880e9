// Elementwise activations (relu, leaky_relu, sigmoid, tanh) and softmax over
// channels: the shape is the input's.
#include "../LayerKinds.h"

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

}  // namespace cnnc
