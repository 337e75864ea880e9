// dense: a fully connected layer, as torch.nn.Linear; a non-flat input is
// flattened implicitly in C, H, W order.
#include "../LayerKinds.h"

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

}  // namespace cnnc
