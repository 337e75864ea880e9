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
  out.value.func = Halide::Func(layer.name);
  out.value.func(c, x, y, n) = reduceWindow(
      layer, input, [](Halide::Expr a, Halide::Expr b) { return Halide::max(a, b); },
      [](Halide::Expr e) { return Halide::maximum(e); });
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
  Halide::Func grad(layer.name + "_grad_in");
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride"), pad = layer.sizeAttr("pad");
  if (kernel == stride && pad == Size2{0, 0}) {
    // Windows tile the input: one window covers each position, if any.
    int kw = static_cast<int>(kernel.w), kh = static_cast<int>(kernel.h);
    int outW = static_cast<int>(layer.outputShape.width()), outH = static_cast<int>(layer.outputShape.height());
    Halide::Expr ox = Halide::min(x / kw, outW - 1), oy = Halide::min(y / kh, outH - 1);
    Halide::Expr won = x / kw < outW && y / kh < outH && winner(c, ox, oy, n)[0] == x - ox * kw &&
                       winner(c, ox, oy, n)[1] == y - oy * kh;
    grad(c, x, y, n) = Halide::select(won, ctx.gradOutput(c, ox, oy, n), 0.0f);
  } else {
    CoveringWindows cover = coveringWindows(layer, layer.name + "_grad_r");
    Halide::Expr won = winner(c, cover.ox, cover.oy, n)[0] == cover.r.x &&
                       winner(c, cover.ox, cover.oy, n)[1] == cover.r.y;
    grad(c, x, y, n) = Halide::sum(Halide::select(cover.exists && won, ctx.gradOutput(c, cover.ox, cover.oy, n), 0.0f));
  }
  LayerGradients grads;
  grads.inputs = {grad};
  grads.stages["argmax"] = winner;
  return grads;
}

}  // namespace cnnc
