// conv2d: a 2-D convolution over CxHxW, as torch.nn.Conv2d.
#include <fmt/format.h>

#include "../LayerKinds.h"
#include "../Lowering.h"

namespace cnnc {

static std::optional<Shape> conv2dShape(ShapeContext& ctx) {
  if (!ctx.requireImage()) return std::nullopt;
  Layer& layer = ctx.layer;
  const Shape& in = ctx.input();
  int64_t filters = layer.intAttr("filters"), groups = layer.intAttr("groups");
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride");
  Size2 dilation = layer.sizeAttr("dilation");

  if (in.channels() % groups != 0)
    return ctx.error("groups", fmt::format("conv2d '{}': groups={} does not divide the {} input "
                                           "channels of '{}'",
                                           layer.name, groups, in.channels(), ctx.inputNames[0]));
  if (filters % groups != 0)
    return ctx.error("groups", fmt::format("conv2d '{}': groups={} does not divide filters={}",
                                           layer.name, groups, filters));

  // pad=same keeps ceil(in/stride) pixels with a symmetric pad, which needs
  // an even dilated kernel extent: an odd kernel.
  if (std::holds_alternative<std::string>(layer.attr("pad"))) {
    if (kernel.h % 2 == 0 || kernel.w % 2 == 0)
      return ctx.error(
          "pad", fmt::format("conv2d '{}': pad=same needs an odd kernel, got kernel={}", layer.name,
                             kernel.str()));
    Size2 same{dilation.h * (kernel.h - 1) / 2, dilation.w * (kernel.w - 1) / 2};
    for (auto& attribute : layer.attributes)
      if (attribute.key == "pad") attribute.value = same;
  }
  Size2 pad = layer.sizeAttr("pad");
  auto h = windowOutputSize(ctx, "height", in.height(), kernel.h, stride.h, pad.h, dilation.h);
  if (!h) return std::nullopt;
  auto w = windowOutputSize(ctx, "width", in.width(), kernel.w, stride.w, pad.w, dilation.w);
  if (!w) return std::nullopt;
  return Shape{{filters, *h, *w}};
}

static std::vector<ParamSpec> conv2dParams(const Layer& layer, const std::vector<Shape>& inputs) {
  int64_t filters = layer.intAttr("filters");
  Size2 kernel = layer.sizeAttr("kernel");
  std::vector<ParamSpec> params = {
      {"weight", {filters, inputs[0].channels() / layer.intAttr("groups"), kernel.h, kernel.w}}};
  if (layer.boolAttr("bias")) params.push_back({"bias", {filters}});
  return params;
}

static double conv2dFlops(const Layer& layer, const std::vector<Shape>& inputs) {
  Size2 kernel = layer.sizeAttr("kernel");
  const Shape& out = layer.outputShape;
  double perOutput =
      2.0 * double(inputs[0].channels() / layer.intAttr("groups")) * kernel.h * kernel.w;
  return perOutput * double(out.elements());
}

LayerKindInfo conv2dKind() {
  KeySpec pad{"pad", ValueType::PadSize, "0", 0};
  return {LayerKind::Conv2D,
          "conv2d",
          {{"filters", ValueType::Int, ""},
           sizeKey("kernel", ""),
           sizeKey("stride", "1"),
           pad,
           sizeKey("dilation", "1"),
           {"groups", ValueType::Int, "1", 1},
           biasKey(),
           activationKey(),
           initKey()},
          1,
          1,
          conv2dShape,
          conv2dParams,
          conv2dFlops};
}


// out(k, x, y, n) = act(bias(k) + sum_{ci,kx,ky} in(g*Cg + ci, x*sx - px + kx*dx, y*sy - py + ky*dy, n)
//                                        * w(kx, ky, ci, k)),  g = k / (K/groups)
LoweredLayer conv2dForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.layer;
  const LoweredValue& in = *ctx.inputs[0];
  int K = static_cast<int>(layer.intAttr("filters")), groups = static_cast<int>(layer.intAttr("groups"));
  int Cg = static_cast<int>(in.shape.channels()) / groups, Kg = K / groups;
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride");
  Size2 pad = layer.sizeAttr("pad"), dilation = layer.sizeAttr("dilation");
  bool hasBias = layer.boolAttr("bias");

  LoweredLayer out;
  // The input as the conv reads it: zero-padded when pad > 0. The schedule
  // materializes it or reads the producer directly.
  Halide::Func input(layer.name + "_input");
  if (pad.h > 0 || pad.w > 0)
    input = padded(in, 0.0f, layer.name + "_input");
  else
    input(c, x, y, n) = in.func(c, x, y, n);
  // Weights packed with the output channel innermost (vectorized over k)
  // and zero beyond K, so that the schedule may round the channels up to
  // whole register tiles; a folded batchnorm scales them here for free.
  Halide::Func weights(layer.name + "_weights"), bias(layer.name + "_bias");
  Halide::Var kx("kx"), ky("ky"), ci("ci");
  Halide::Expr k = Halide::min(c, K - 1);
  Halide::Expr w = ctx.params[0](kx, ky, ci, k);
  Halide::Expr b = hasBias ? ctx.params[1](k) : Halide::Expr(0.0f);
  if (ctx.foldedBatchNormLayer) {
    auto [scale, shift] = batchNormScaleShift(*ctx.foldedBatchNormLayer, ctx.foldedBatchNorm);
    out.stages["bn_scale"] = scale;
    out.stages["bn_shift"] = shift;
    w = w * scale(k);
    b = b * scale(k) + shift(k);
  }
  weights(c, ci, kx, ky) = Halide::select(c < K, w, 0.0f);
  bias(c) = Halide::select(c < K, b, 0.0f);

  Halide::RDom r(0, Cg, 0, static_cast<int>(kernel.w), 0, static_cast<int>(kernel.h), "r");
  Halide::Expr inChannel = groups == 1 ? Halide::Expr(r.x) : Halide::min(c / Kg, groups - 1) * Cg + r.x;
  Halide::Expr ix = x * static_cast<int>(stride.w) - static_cast<int>(pad.w) + r.y * static_cast<int>(dilation.w);
  Halide::Expr iy = y * static_cast<int>(stride.h) - static_cast<int>(pad.h) + r.z * static_cast<int>(dilation.h);
  Halide::Func conv(layer.name + "_conv");
  conv(c, x, y, n) = bias(c);
  conv(c, x, y, n) += input(inChannel, ix, iy, n) * weights(c, r.x, r.y, r.z);

  out.value.func = Halide::Func(layer.name);
  out.value.func(c, x, y, n) = applyActivation(conv(c, x, y, n), layer.identAttr("activation"));
  out.value.shape = layer.outputShape;
  out.stages["input"] = input;
  out.stages["weights"] = weights;
  out.stages["bias"] = bias;
  out.stages["conv"] = conv;
  out.reductions["conv"] = r;
  return out;
}

}  // namespace cnnc
