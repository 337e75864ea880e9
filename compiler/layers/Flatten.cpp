// flatten: CxHxW to a vector in C, H, W order (row-major, as PyTorch).
#include "../LayerKinds.h"

namespace cnnc {

static std::optional<Shape> flattenShape(ShapeContext& ctx) {
  return Shape{{ctx.input().elements()}};
}

LayerKindInfo flattenKind() {
  return {LayerKind::Flatten, "flatten", {}, 1, 1, flattenShape, nullptr, nullptr};
}

}  // namespace cnnc
