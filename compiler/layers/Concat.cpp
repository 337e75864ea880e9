// concat: joins two or more layers along channels (images of equal H and W)
// or along the only axis (flat vectors), in `from` order.
#include <fmt/format.h>

#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

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


LoweredLayer concatForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  // Walk the inputs from the last: channel c belongs to the first input
  // whose range holds it.
  std::vector<int> offsets;
  int total = 0;
  for (const LoweredValue* in : ctx.inputs) offsets.push_back(total), total += static_cast<int>(in->shape.channels());
  Halide::Expr value;
  for (int i = static_cast<int>(ctx.inputs.size()) - 1; i >= 0; --i) {
    int channels = static_cast<int>(ctx.inputs[i]->shape.channels());
    Halide::Expr local = Halide::clamp(c - offsets[i], 0, channels - 1);
    Halide::Expr read = ctx.inputs[i]->func(local, x, y, n);
    value = value.defined() ? Halide::select(c < offsets[i] + channels, read, value) : read;
  }
  LoweredLayer out;
  out.value.func = Halide::Func(ctx.layer.name);
  out.value.func(c, x, y, n) = value;
  out.value.shape = ctx.layer.outputShape;
  return out;
}

// Each input's gradient is its slice of the channels.
LayerGradients concatBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  LayerGradients grads;
  int offset = 0;
  for (const LoweredValue* in : ctx.forward.inputs) {
    Halide::Func slice(fmt::format("{}_grad_in{}", ctx.forward.layer.name, grads.inputs.size()));
    slice(c, x, y, n) = ctx.gradOutput(c + offset, x, y, n);
    grads.inputs.push_back(slice);
    offset += static_cast<int>(in->shape.channels());
  }
  return grads;
}

}  // namespace cnnc
