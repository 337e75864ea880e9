// maxpool: the maximum over each window; padding never wins the max.
#include "Pooling.h"
#include "../Lowering.h"

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

}  // namespace cnnc
