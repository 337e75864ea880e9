// dense: a fully connected layer, as torch.nn.Linear; a non-flat input is
// flattened implicitly in C, H, W order.
#include "../LayerKinds.h"
#include "../Lowering.h"

namespace cnnc {

static std::optional<Shape> denseShape(ShapeContext& ctx) {
  return Shape{{ctx.layer.intAttr("units")}};
}

static std::vector<ParamSpec> denseParams(const Layer& layer, const std::vector<Shape>& inputs) {
  int64_t units = layer.intAttr("units");
  std::vector<ParamSpec> params = {{"weight", {units, inputs[0].elements()}}};
  if (layer.boolAttr("bias")) params.push_back({"bias", {units}});
  return params;
}

static double denseFlops(const Layer& layer, const std::vector<Shape>& inputs) {
  return 2.0 * double(inputs[0].elements()) * double(layer.intAttr("units"));
}

LayerKindInfo denseKind() {
  return {LayerKind::Dense,
          "dense",
          {{"units", ValueType::Int, ""}, biasKey(), activationKey(), initKey()},
          1,
          1,
          denseShape,
          denseParams,
          denseFlops};
}


// out(o, n) = act(bias(o) + sum_f in(f, n) * w(f, o)); an image input is read
// in place as f = (c*H + y)*W + x.
LoweredLayer denseForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.layer;
  const LoweredValue& in = *ctx.inputs[0];
  const Halide::Func& weight = ctx.params[0];
  Halide::Func image = in.image ? *in.image : in.func;
  Shape imageShape = in.image ? in.imageShape : in.shape;

  Halide::Func sum(layer.name + "_sum");
  sum(c, n) = layer.boolAttr("bias") ? ctx.params[1](c) : Halide::Expr(0.0f);
  if (imageShape.isImage()) {
    int C = static_cast<int>(imageShape.channels()), H = static_cast<int>(imageShape.height());
    int W = static_cast<int>(imageShape.width());
    Halide::RDom r(0, C, 0, W, 0, H, "r");
    sum(c, n) += image(r.x, r.y, r.z, n) * weight((r.x * H + r.z) * W + r.y, c);
  } else {
    Halide::RDom r(0, static_cast<int>(imageShape.dims[0]), "r");
    sum(c, n) += image(r.x, 0, 0, n) * weight(r.x, c);
  }
  LoweredLayer out;
  out.value.func = Halide::Func(layer.name);
  out.value.func(c, x, y, n) = applyActivation(sum(c, n), layer.identAttr("activation"));
  out.value.shape = layer.outputShape;
  out.stages["sum"] = sum;
  return out;
}

}  // namespace cnnc
