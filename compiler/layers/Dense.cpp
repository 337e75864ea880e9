// dense: a fully connected layer, as torch.nn.Linear; a non-flat input is
// flattened implicitly in C, H, W order.
#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

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

// out(o, n) = act(bias(o) + sum_f in(f, n) * w(f, o)), where an image input
// is read as a vector in PyTorch's flatten order f = (c*H + y)*W + x.
LoweredLayer denseForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.layer;
  const LoweredValue& in = *ctx.inputs[0];
  const Halide::Func& weight = ctx.params[0];
  int units = static_cast<int>(layer.intAttr("units"));
  int features = static_cast<int>(in.shape.elements());

  Halide::Func flat(layer.name + "_flat");
  flat(c, n) = flatFeature(in, c, n);
  // The weights as w(unit, feature), units innermost and zero beyond
  // `units`: prepared so once per change of the parameters (PreparedLayer),
  // or else a transposed copy stored on every call.
  Halide::Func packed(layer.name + "_packed"), bias(layer.name + "_bias");
  Halide::Var f("f");
  if (ctx.prepared) {
    // One block: the plain index, without a modulo and a division per load.
    int block = ctx.prepared->block;
    packed(c, f) = ctx.prepared->blocks == 1 ? ctx.preparedWeights(c, f, 0, 0, 0)
                                             : ctx.preparedWeights(c % block, f, 0, 0, c / block);
    bias(c) = ctx.preparedBias(c);
  } else {
    packed(c, f) = Halide::select(c < units, weight(f, Halide::min(c, units - 1)), 0.0f);
    bias(c) = layer.boolAttr("bias")
                  ? Halide::select(c < units, ctx.params[1](Halide::min(c, units - 1)), 0.0f)
                  : Halide::Expr(0.0f);
  }

  Halide::RDom r(0, features, "r");
  Halide::Func sum(layer.name + "_sum");
  sum(c, n) = bias(c);
  sum(c, n) += flat(r, n) * packed(c, r);

  LoweredLayer out;
  out.value.func = Halide::Func(layer.name);
  out.value.func(c, x, y, n) = applyActivation(sum(c, n), layer.identAttr("activation"));
  out.value.shape = layer.outputShape;
  out.stages["flat"] = flat;
  if (!ctx.prepared) out.stages["packed"] = packed;
  out.stages["bias"] = bias;
  out.stages["sum"] = sum;
  out.reductions["sum"] = r;
  return out;
}

// With dz = g * act'(z): dW(f, o) = sum_n dz(o, n) in(f, n),
// db(o) = sum_n dz(o, n), din(f, n) = sum_o dz(o, n) W(f, o).
LayerGradients denseBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const ForwardContext& f = ctx.forward;
  const Layer& layer = f.layer;
  const LoweredValue& in = *f.inputs[0];
  int units = static_cast<int>(layer.intAttr("units"));
  Halide::Func gradSum(layer.name + "_grad_sum");
  gradSum(c, n) = activationGradient(ctx.gradOutput(c, 0, 0, n), ctx.lowered.value.func(c, 0, 0, n),
                                     ctx.lowered.stages.at("sum")(c, n), layer.identAttr("activation"));
  Halide::Var feature("f"), unit("o");
  Halide::RDom examples(0, ctx.batch, layer.name + "_grad_rn");
  // The input in PyTorch's flatten order, stored once: the weight gradient
  // reads it contiguously.
  Halide::Func flatInput(layer.name + "_grad_flat_input");
  flatInput(feature, n) = flatFeature(in, feature, n);
  Halide::Func gradWeight(layer.name + "_grad_weight"), gradBias(layer.name + "_grad_bias");
  gradWeight(feature, unit) = 0.0f;
  gradWeight(feature, unit) += gradSum(unit, examples) * flatInput(feature, examples);
  gradBias(unit) = 0.0f;
  gradBias(unit) += gradSum(unit, examples);

  Halide::RDom units_(0, units, layer.name + "_grad_ro");
  Halide::Func gradFlat(layer.name + "_grad_flat");
  gradFlat(c, x, y, n) = 0.0f;
  gradFlat(c, x, y, n) += gradSum(units_, n) * f.params[0](c, units_);

  LayerGradients grads;
  grads.inputs = {unflattened(gradFlat, in.shape, layer.name + "_grad_in")};
  grads.params = {gradWeight};
  if (layer.boolAttr("bias")) grads.params.push_back(gradBias);
  grads.stages["grad_sum"] = gradSum;
  grads.stages["grad_flat"] = gradFlat;
  grads.stages["grad_flat_input"] = flatInput;
  grads.reductions["grad_weight"] = examples;
  grads.reductions["grad_flat"] = units_;
  return grads;
}

}  // namespace cnnc
