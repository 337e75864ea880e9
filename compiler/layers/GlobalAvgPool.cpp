// global_avgpool: the mean of each channel over the whole image.
#include "../LayerKinds.h"

namespace cnnc {

static std::optional<Shape> globalAvgPoolShape(ShapeContext& ctx) {
  if (!ctx.requireImage()) return std::nullopt;
  return Shape{{ctx.input().channels(), 1, 1}};
}

static double globalAvgPoolFlops(const Layer&, const std::vector<Shape>& inputs) {
  return double(inputs[0].elements());
}

LayerKindInfo globalAvgPoolKind() {
  return {LayerKind::GlobalAvgPool, "global_avgpool", {}, 1, 1, globalAvgPoolShape, nullptr,
          globalAvgPoolFlops};
}

}  // namespace cnnc
