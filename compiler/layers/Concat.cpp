// concat: joins two or more layers along channels (images of equal H and W)
// or along the only axis (flat vectors), in `from` order.
#include <fmt/format.h>

#include "../LayerKinds.h"

namespace cnnc {

static std::optional<Shape> concatShape(ShapeContext& ctx) {
  const Shape& first = ctx.inputs[0];
  Shape out = first;
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    const Shape& in = ctx.inputs[i];
    bool compatible =
        in.dims.size() == first.dims.size() &&
        (first.isFlat() || (in.height() == first.height() && in.width() == first.width()));
    if (!compatible)
      return ctx.error(
          "from",
          fmt::format("concat '{}': '{}' is {} but '{}' is {}; images need equal "
                      "height and width",
                      ctx.layer.name, ctx.inputNames[0], first.str(), ctx.inputNames[i], in.str()));
    out.dims[0] += in.dims[0];
  }
  return out;
}

LayerKindInfo concatKind() {
  return {LayerKind::Concat, "concat", {},     2, std::numeric_limits<int>::max(),
          concatShape,       nullptr,  nullptr};
}

}  // namespace cnnc
