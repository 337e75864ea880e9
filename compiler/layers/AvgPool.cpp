// avgpool: the mean over each window; padded zeros count in the mean
// (PyTorch's count_include_pad=True).
#include "../Lowering.h"
#include "Pooling.h"

namespace cnnc {

LayerKindInfo avgPoolKind() {
  return {LayerKind::AvgPool, "avgpool", poolingKeys(), 1, 1, poolingShape, nullptr, poolingFlops};
}

LoweredLayer avgPoolForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.layer;
  LoweredLayer out;
  Halide::Func input = padded(*ctx.inputs[0], 0.0f, layer.name + "_padded");
  PoolWindow window = poolWindow(layer);
  out.value.func = Halide::Func(layer.name);
  out.value.func(c, x, y, n) =
      reduceWindow(
          layer, input, [](Halide::Expr a, Halide::Expr b) { return a + b; },
          [](Halide::Expr e) { return Halide::sum(e); }) *
      (1.0f / window.size);
  out.value.shape = layer.outputShape;
  out.stages["padded"] = input;
  return out;
}

// Each window's gradient spread evenly over its kernel (padding included,
// whose share is dropped).
LayerGradients avgPoolBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.forward.layer;
  CoveringWindows cover = coveringWindows(layer, layer.name + "_grad_r");
  Size2 kernel = layer.sizeAttr("kernel");
  Halide::Func grad(layer.name + "_grad_in");
  grad(c, x, y, n) =
      Halide::sum(Halide::select(cover.exists, ctx.gradOutput(c, cover.ox, cover.oy, n), 0.0f)) *
      (1.0f / static_cast<float>(kernel.h * kernel.w));
  LayerGradients grads;
  grads.inputs = {grad};
  return grads;
}

}  // namespace cnnc
