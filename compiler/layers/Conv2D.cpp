// conv2d: a 2-D convolution over CxHxW, as torch.nn.Conv2d.
#include <fmt/format.h>

#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

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

// out(k, x, y, n) = act(bias(k) + sum_{ci,kx,ky} w(kx, ky, ci, k)
//                        * in(g*Cg + ci, x*sx - px + kx*dx, y*sy - py + ky*dy, n)),
// g = k / (K/groups)
LoweredLayer conv2dForward(const ForwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.layer;
  const LoweredValue& in = *ctx.inputs[0];
  int K = static_cast<int>(layer.intAttr("filters")),
      groups = static_cast<int>(layer.intAttr("groups"));
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
  std::pair<Halide::Func, Halide::Func> folded;
  if (ctx.foldedBatchNormLayer) {
    folded = batchNormScaleShift(*ctx.foldedBatchNormLayer, ctx.foldedBatchNorm);
    out.stages["bn_scale"] = folded.first;
    out.stages["bn_shift"] = folded.second;
  }
  auto weightOf = [&](const Halide::Expr& filter) {
    Halide::Expr k = Halide::min(filter, K - 1);
    Halide::Expr w = ctx.params[0](kx, ky, ci, k);
    return ctx.foldedBatchNormLayer ? w * folded.first(k) : w;
  };
  Halide::Expr k = Halide::min(c, K - 1);
  Halide::Expr b = hasBias ? ctx.params[1](k) : Halide::Expr(0.0f);
  if (ctx.foldedBatchNormLayer) b = b * folded.first(k) + folded.second(k);
  // Stored in blocks of output channels, packed(k % block, ci, kx, ky,
  // k / block), and read through `weights` (inlined).
  Halide::Var kv("kv"), kb("kb");
  Halide::Func packed(layer.name + "_packed_weights");
  if (ctx.prepared) {
    // Packed once per change of the parameters, as below (PreparedLayer).
    int block = ctx.prepared->block;
    weights(c, ci, kx, ky) = ctx.preparedWeights(c % block, ci, kx, ky, c / block);
  } else if (ctx.weightBlock > 0) {
    Halide::Expr blockedK = kb * ctx.weightBlock + kv;
    packed(kv, ci, kx, ky, kb) = Halide::select(blockedK < K, weightOf(blockedK), 0.0f);
    weights(c, ci, kx, ky) = packed(c % ctx.weightBlock, ci, kx, ky, c / ctx.weightBlock);
  } else {
    packed(kv, ci, kx, ky, kb) = Halide::select(kv < K, weightOf(kv), 0.0f);
    weights(c, ci, kx, ky) = packed(c, ci, kx, ky, 0);
  }
  if (ctx.prepared)
    bias(c) = ctx.preparedBias(c);
  else
    bias(c) = Halide::select(c < K, b, 0.0f);
  if (ctx.prepared && ctx.prepared->winograd) return conv2dWinogradForward(ctx, input, bias);

  Halide::RDom r(0, Cg, 0, static_cast<int>(kernel.w), 0, static_cast<int>(kernel.h), "r");
  Halide::Expr inChannel =
      groups == 1 ? Halide::Expr(r.x) : Halide::min(c / Kg, groups - 1) * Cg + r.x;
  Halide::Expr ix =
      x * static_cast<int>(stride.w) - static_cast<int>(pad.w) + r.y * static_cast<int>(dilation.w);
  Halide::Expr iy =
      y * static_cast<int>(stride.h) - static_cast<int>(pad.h) + r.z * static_cast<int>(dilation.h);
  Halide::Func conv(layer.name + "_conv");
  conv(c, x, y, n) = bias(c);
  conv(c, x, y, n) += input(inChannel, ix, iy, n) * weights(c, r.x, r.y, r.z);

  out.value.func = Halide::Func(layer.name);
  out.value.func(c, x, y, n) = applyActivation(conv(c, x, y, n), layer.identAttr("activation"));
  out.value.shape = layer.outputShape;
  out.stages["input"] = input;
  out.stages["weights"] = weights;
  if (!ctx.prepared) out.stages["packed_weights"] = packed;
  out.stages["bias"] = bias;
  out.stages["conv"] = conv;
  out.reductions["conv"] = r;
  return out;
}

// With dz = g * act'(z), group gi = k / Kg and ci the channel within it:
//   dW(kx, ky, ci, k) = sum_{x,y,n} dz(k, x, y, n)
//                           * in(gi*Cg + ci, x*sx - px + kx*dx, y*sy - py + ky*dy, n)
//   db(k)             = sum_{x,y,n} dz(k, x, y, n)
//   din(c, ix, iy, n) = sum_{kl,kx,ky} dz(gi*Kg + kl, ox, oy, n) W(kx, ky, c - gi*Cg, gi*Kg + kl)
// where (ox, oy) is the output whose window puts (kx, ky) at (ix, iy), when
// one exists (the stride divides the offset, and it lies in the output).
LayerGradients conv2dBackward(const BackwardContext& ctx) {
  const auto& [c, x, y, n] = layerVars();
  const ForwardContext& f = ctx.forward;
  const Layer& layer = f.layer;
  const LoweredValue& in = *f.inputs[0];
  const std::string& name = layer.name;
  int K = static_cast<int>(layer.intAttr("filters")),
      groups = static_cast<int>(layer.intAttr("groups"));
  int Cg = static_cast<int>(in.shape.channels()) / groups, Kg = K / groups;
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride");
  Size2 pad = layer.sizeAttr("pad"), dilation = layer.sizeAttr("dilation");
  int sx = static_cast<int>(stride.w), sy = static_cast<int>(stride.h);
  int px = static_cast<int>(pad.w), py = static_cast<int>(pad.h);
  int dx = static_cast<int>(dilation.w), dy = static_cast<int>(dilation.h);
  int outW = static_cast<int>(layer.outputShape.width()),
      outH = static_cast<int>(layer.outputShape.height());

  // Zero beyond the K filters, so that schedules may round the channels up
  // to whole vectors.
  Halide::Func gradConv(name + "_grad_conv");
  Halide::Expr kc = Halide::min(c, K - 1);
  gradConv(c, x, y, n) = Halide::select(
      c < K,
      activationGradient(ctx.gradOutput(kc, x, y, n), ctx.lowered.value.func(kc, x, y, n),
                         ctx.lowered.stages.at("conv")(kc, x, y, n), layer.identAttr("activation")),
      0.0f);

  // The weights: a reduction over every output position of the batch,
  // accumulated with the filter innermost (vectorized over k) and then laid
  // out as PyTorch's [K, C/g, kh, kw]; the bias below.
  Halide::Func input = pad.h > 0 || pad.w > 0 ? padded(in, 0.0f, name + "_grad_input") : in.func;
  Halide::Var kx("kx"), ky("ky"), ci("ci"), k("k");
  Halide::RDom positions(0, outW, 0, outH, 0, ctx.batch, name + "_grad_rw");
  Halide::Expr group = groups == 1 ? Halide::Expr(0) : Halide::min(k, K - 1) / Kg;
  Halide::Func weightSums(name + "_grad_weight_sums"), gradWeight(name + "_grad_weight");
  weightSums(k, ci, kx, ky) = 0.0f;
  weightSums(k, ci, kx, ky) += gradConv(k, positions.x, positions.y, positions.z) *
                               input(group * Cg + ci, positions.x * sx - px + kx * dx,
                                     positions.y * sy - py + ky * dy, positions.z);
  gradWeight(kx, ky, ci, k) = weightSums(k, ci, kx, ky);

  LayerGradients grads;
  // The input: at stride 1, the forward convolution of dz with the filters
  // flipped and transposed (scheduled as any convolution); otherwise the
  // transposed convolution summed directly, zero where no window reads.
  Halide::Func gradInput(name + "_grad_in");
  Size2 flippedPad{dy * (static_cast<int>(kernel.h) - 1) - py,
                   dx * (static_cast<int>(kernel.w) - 1) - px};
  if (sx == 1 && sy == 1 && flippedPad.h >= 0 && flippedPad.w >= 0) {
    Layer transposed = layer;
    transposed.name = name + "_grad_in";
    int C = static_cast<int>(in.shape.channels());
    for (Attribute& a : transposed.attributes) {
      if (a.key == "filters") a.value = int64_t(C);
      if (a.key == "pad") a.value = flippedPad;
      if (a.key == "bias") a.value = false;
      if (a.key == "activation") a.value = std::string("none");
    }
    transposed.outputShape = in.shape;
    transposed.params = {{"weight", {C, Kg, kernel.h, kernel.w}}};
    Halide::Var fx("fx"), fy("fy"), fk("fk"), fc("fc");
    Halide::Expr g = groups == 1 ? Halide::Expr(0) : fc / Cg;
    Halide::Func flipped(name + "_grad_in_weights");
    flipped(fx, fy, fk, fc) =
        f.params[0](static_cast<int>(kernel.w) - 1 - fx, static_cast<int>(kernel.h) - 1 - fy,
                    fc - g * Cg, g * Kg + fk);
    LoweredValue upstream{gradConv, layer.outputShape};
    ForwardContext tctx{f.net, transposed, f.layerIndex, {&upstream}, {flipped}, Purpose::Training};
    LoweredLayer lowered = conv2dForward(tctx);
    gradInput(c, x, y, n) = lowered.value.func(c, x, y, n);
    grads.asConvolution = std::make_pair(transposed, lowered);
  } else {
    Halide::RDom taps(0, Kg, 0, static_cast<int>(kernel.w), 0, static_cast<int>(kernel.h),
                      name + "_grad_ri");
    Halide::Expr inGroup = groups == 1 ? Halide::Expr(0) : c / Cg;
    Halide::Expr nx = x + px - taps.y * dx, ny = y + py - taps.z * dy;
    Halide::Expr ox = nx / sx, oy = ny / sy;
    Halide::Expr exists = ox >= 0 && ox < outW && oy >= 0 && oy < outH;
    if (sx > 1) exists = exists && nx % sx == 0;
    if (sy > 1) exists = exists && ny % sy == 0;
    Halide::Expr filter = inGroup * Kg + taps.x;
    gradInput(c, x, y, n) = 0.0f;
    gradInput(c, x, y, n) += Halide::select(
        exists,
        gradConv(filter, Halide::clamp(ox, 0, outW - 1), Halide::clamp(oy, 0, outH - 1), n) *
            f.params[0](taps.y, taps.z, c - inGroup * Cg, filter),
        0.0f);
    grads.reductions["grad_in"] = taps;
  }

  grads.inputs = {gradInput};
  grads.params = {gradWeight};
  if (layer.boolAttr("bias")) {
    // Each example's sum first (a stage with the examples to run in
    // parallel and the filters to vectorize), then the batch's.
    Halide::RDom pixels(0, outW, 0, outH, name + "_grad_rb"),
        examples(0, ctx.batch, name + "_grad_rn");
    Halide::Func biasSums(name + "_grad_bias_sums"), gradBias(name + "_grad_bias");
    biasSums(k, n) = 0.0f;
    biasSums(k, n) += gradConv(k, pixels.x, pixels.y, n);
    gradBias(k) = 0.0f;
    gradBias(k) += biasSums(k, examples);
    grads.params.push_back(gradBias);
    grads.stages["grad_bias_sums"] = biasSums;
    grads.reductions["grad_bias"] = pixels;
  }
  grads.stages["grad_conv"] = gradConv;
  grads.stages["grad_weight_sums"] = weightSums;
  if (input.name() != in.func.name()) grads.stages["grad_input"] = input;
  grads.reductions["grad_weight"] = positions;
  return grads;
}

}  // namespace cnnc
