// maxpool: the maximum over each window; padding never wins the max.
#include "Pooling.h"
#include "../Lowering.h"
#include "../Training.h"

namespace cnnc {

LayerKindInfo maxPoolKind() {
  return {LayerKind::MaxPool, "maxpool", poolingKeys(), 1, 1, poolingShape, nullptr, poolingFlops};
}


LoweredLayer maxPoolForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.layer;
  LoweredLayer out;
  // Padding never wins: padded positions read -infinity.
  Halide::Func input = padded(*ctx.inputs[0], Halide::Float(32).min(), layer.name + "_padded");
  PoolWindow window = poolWindow(layer);
  out.value.func = Halide::Func(layer.name);
  out.value.func(c, x, y, n) = Halide::maximum(input(c, window.ix, window.iy, n));
  out.value.shape = layer.outputShape;
  out.stages["padded"] = input;
  return out;
}

// Each window's gradient goes to the first position holding its maximum
// (in row-major window order, as PyTorch picks it).
LayerGradients maxPoolBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.forward.layer;
  Halide::Func input = padded(*ctx.forward.inputs[0], Halide::Float(32).min(), layer.name + "_grad_padded");
  PoolWindow window = poolWindow(layer);
  Halide::Func winner(layer.name + "_argmax");
  winner(c, x, y, n) = Halide::argmax(input(c, window.ix, window.iy, n));
  CoveringWindows cover = coveringWindows(layer, layer.name + "_grad_r");
  Halide::Expr won = winner(c, cover.ox, cover.oy, n)[0] == cover.r.x &&
                     winner(c, cover.ox, cover.oy, n)[1] == cover.r.y;
  Halide::Func grad(layer.name + "_grad_in");
  grad(c, x, y, n) = Halide::sum(Halide::select(cover.exists && won, ctx.gradOutput(c, cover.ox, cover.oy, n), 0.0f));
  LayerGradients grads;
  grads.inputs = {grad};
  grads.stages["argmax"] = winner;
  return grads;
}

}  // namespace cnnc
