#include "Conv2DAlgorithm.h"

namespace cnnc {

using Halide::Expr;
using Halide::Func;

Expr applyConvActivation(const Expr& v, ConvActivation activation, float leakySlope) {
  switch (activation) {
    case ConvActivation::None: return v;
    case ConvActivation::ReLU: return Halide::max(v, 0.0f);
    case ConvActivation::ReLU6: return Halide::clamp(v, 0.0f, 6.0f);
    case ConvActivation::LeakyReLU: return Halide::select(v > 0.0f, v, v * leakySlope);
    case ConvActivation::Sigmoid: return 1.0f / (1.0f + Halide::fast_exp(-v));
    case ConvActivation::Tanh: return Halide::tanh(v);
  }
  return v;
}

// out(k, x, y, n) = act(bias(k) + sum_{ci,kx,ky} in(g*Cg + ci, x*sx - px + kx*dx, y*sy - py + ky*dy, n)
//                                       * w(kx, ky, ci, k)),   g = k / (K/groups)
Func packConv2DWeights(const Func& weight, const Conv2DShape& s, const std::string& name) {
  Halide::Var c("c"), ci("ci"), kx("kx"), ky("ky");
  Func packed(name);
  packed(c, ci, kx, ky) = Halide::select(c < s.filters, weight(kx, ky, ci, Halide::min(c, s.filters - 1)), 0.0f);
  return packed;
}

Conv2DFuncs conv2dForward(const Func& in, const Func& weight, const Func& biasIn, const Conv2DShape& s,
                          const std::string& name, WeightLayout layout, int packTile) {
  Conv2DFuncs f;
  const Halide::Var &c = f.c, &x = f.x, &y = f.y, &n = f.n;
  const int K = s.filters, Cg = s.channelsPerGroup(), Kg = K / s.groups;

  // Zero padding as a boundary condition: a select per load, so the
  // schedule stores it (per tile or per call) rather than inlining it.
  f.input = Func(name + "_input");
  f.padded = s.padX > 0 || s.padY > 0;
  if (f.padded) {
    Expr inside = x >= 0 && x < s.width && y >= 0 && y < s.height;
    f.input(c, x, y, n) =
        Halide::select(inside, in(c, Halide::clamp(x, 0, s.width - 1), Halide::clamp(y, 0, s.height - 1), n), 0.0f);
  } else {
    f.input(c, x, y, n) = in(c, x, y, n);
  }

  Expr k = Halide::min(c, K - 1);
  f.weightsPacked = layout == WeightLayout::Packed;
  if (f.weightsPacked) {
    Halide::Var ci("ci"), kx("kx"), ky("ky");
    f.weights = Func(name + "_weights");
    f.weights(c, ci, kx, ky) = weight(c % packTile, ci, kx, ky, c / packTile);
  } else {
    f.weights = packConv2DWeights(weight, s, name + "_weights");
  }
  f.bias = Func(name + "_bias");
  f.bias(c) = s.bias ? Halide::select(c < K, biasIn(k), 0.0f) : Expr(0.0f);

  f.r = Halide::RDom(0, Cg, 0, s.kernelW, 0, s.kernelH, name + "_r");
  Expr inChannel = s.groups == 1 ? Expr(f.r.x) : Halide::min(c / Kg, s.groups - 1) * Cg + f.r.x;
  Expr ix = x * s.strideX - s.padX + f.r.y * s.dilationX;
  Expr iy = y * s.strideY - s.padY + f.r.z * s.dilationY;
  f.conv = Func(name + "_sum");
  f.conv(c, x, y, n) = f.bias(c);
  f.conv(c, x, y, n) += f.input(inChannel, ix, iy, n) * f.weights(c, f.r.x, f.r.y, f.r.z);

  f.output = Func(name);
  f.output(c, x, y, n) = applyConvActivation(f.conv(c, x, y, n), s.activation, s.leakySlope);
  return f;
}

}  // namespace cnnc
