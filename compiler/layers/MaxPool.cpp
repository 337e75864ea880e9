// maxpool: the maximum over each window; padding never wins the max.
#include "../Lowering.h"
#include "../Training.h"
#include "Pooling.h"

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

namespace {

// The position in its window (row-major: ky * kernel width + kx) of the
// first value holding the window's maximum, as PyTorch picks it. Small
// windows are compared term by term, so that this vectorizes.
Halide::Expr firstMaximum(const Layer& layer, const Halide::Func& input) {
  const auto& [c, x, y, n] = layerVars();
  PoolWindow window = poolWindow(layer);
  int kw = static_cast<int>(layer.sizeAttr("kernel").w);
  if (window.size > kUnrolledWindow) {
    Halide::Tuple best = Halide::argmax(input(c, window.ix, window.iy, n));
    return best[1] * kw + best[0];
  }
  std::vector<Halide::Expr> terms = windowTerms(layer, input);
  Halide::Expr best = terms[0], index = 0;
  for (size_t i = 1; i < terms.size(); ++i) {
    // Strictly greater: ties keep the earlier position.
    index = Halide::select(terms[i] > best, static_cast<int>(i), index);
    best = Halide::max(best, terms[i]);
  }
  return index;
}

}  // namespace

// Each window's gradient goes to the first position holding its maximum
// (in row-major window order, as PyTorch picks it).
LayerGradients maxPoolBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.forward.layer;
  Halide::Func input =
      padded(*ctx.forward.inputs[0], Halide::Float(32).min(), layer.name + "_grad_padded");
  Halide::Func winner(layer.name + "_argmax");
  winner(c, x, y, n) = firstMaximum(layer, input);
  Halide::Func grad(layer.name + "_grad_in");
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride"),
        pad = layer.sizeAttr("pad");
  int kw = static_cast<int>(kernel.w);
  if (kernel == stride && pad == Size2{0, 0}) {
    // Windows tile the input: one window covers each position, if any.
    int kh = static_cast<int>(kernel.h);
    int outW = static_cast<int>(layer.outputShape.width()),
        outH = static_cast<int>(layer.outputShape.height());
    Halide::Expr ox = Halide::min(x / kw, outW - 1), oy = Halide::min(y / kh, outH - 1);
    Halide::Expr won = x / kw < outW && y / kh < outH &&
                       winner(c, ox, oy, n) == (y - oy * kh) * kw + (x - ox * kw);
    grad(c, x, y, n) = Halide::select(won, ctx.gradOutput(c, ox, oy, n), 0.0f);
  } else {
    CoveringWindows cover = coveringWindows(layer, layer.name + "_grad_r");
    Halide::Expr won = winner(c, cover.ox, cover.oy, n) == cover.r.y * kw + cover.r.x;
    grad(c, x, y, n) = Halide::sum(
        Halide::select(cover.exists && won, ctx.gradOutput(c, cover.ox, cover.oy, n), 0.0f));
  }
  LayerGradients grads;
  grads.inputs = {grad};
  grads.stages["argmax"] = winner;
  return grads;
}

}  // namespace cnnc
