// conv2d by Winograd's F(2x2, 3x3): the inference algorithm of a 3x3,
// stride-1 conv whose parameters come prepared (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2015). Each 2x2 block of
// outputs is A^T [U . V] A, with V = B^T d B over the 4x4 input block d and
// U = G g G^T over the 3x3 filter g, prepared once per parameter change: 16
// products per input channel for 4 outputs where a direct conv takes 36.
// As torch.nn.Conv2d, a cross-correlation. F(2x2, 3x3)'s transforms only
// add, subtract and halve, so its rounding stays near the direct sum's:
// VGG-19's output is 2.0e-6 of its scale from PyTorch's (2.2e-6 direct).
#include "../LayerKinds.h"
#include "../Lowering.h"

namespace cnnc {

namespace {

// Row `i` of B^T applied to d0..d3.
Halide::Expr inputTransform(const Halide::Expr (&d)[4], const Halide::Expr& i) {
  return Halide::select(i == 0, d[0] - d[2], i == 1, d[1] + d[2], i == 2, d[2] - d[1], d[1] - d[3]);
}

// Row `a` of A^T applied to m0..m3.
Halide::Expr outputTransform(const Halide::Expr (&m)[4], const Halide::Expr& a) {
  return Halide::select(a == 0, m[0] + m[1] + m[2], m[1] - m[2] - m[3]);
}

// Row `i` of G applied to g0..g2.
Halide::Expr filterTransform(const Halide::Expr (&g)[3], const Halide::Expr& i) {
  return Halide::select(i == 0, g[0], i == 1, 0.5f * (g[0] + g[1] + g[2]), i == 2,
                        0.5f * (g[0] - g[1] + g[2]), g[2]);
}

}  // namespace

Halide::Func winogradFilters(const Halide::Func& packed, const std::string& name) {
  Halide::Var kv("kv"), ci("ci"), i("i"), j("j"), kb("kb"), ky("ky");
  Halide::Func columns(name + "_columns"), filters(name);
  Halide::Expr g[3] = {packed(kv, ci, 0, ky, kb), packed(kv, ci, 1, ky, kb),
                       packed(kv, ci, 2, ky, kb)};
  columns(kv, ci, i, ky, kb) = filterTransform(g, i);
  Halide::Expr t[3] = {columns(kv, ci, i, 0, kb), columns(kv, ci, i, 1, kb),
                       columns(kv, ci, i, 2, kb)};
  filters(kv, ci, i, j, kb) = filterTransform(t, j);
  return filters;
}

bool fitsWinograd(const Layer& layer) {
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride");
  Size2 dilation = layer.sizeAttr("dilation");
  const Shape& out = layer.outputShape;
  return kernel.h == 3 && kernel.w == 3 && stride.h == 1 && stride.w == 1 && dilation.h == 1 &&
         dilation.w == 1 && layer.intAttr("groups") == 1 && out.height() % 2 == 0 &&
         out.width() % 2 == 0;
}

// Stages, over block (x, y) of 2x2 outputs and Winograd point (i, j):
//   winograd_rows(c, i, r, x, y, n)      B^T along the columns of input row 2y + r
//   winograd_input(c, x, y, i, j, n)     V = B^T d B
//   winograd_products(k, x, y, i, j, n)  sum over c of U(k, c, i, j) V(c, x, y, i, j, n)
//   conv(k, x, y, n)                     bias + A^T M A at output (x, y)
LoweredLayer conv2dWinogradForward(const ForwardContext& ctx, const Halide::Func& input,
                                   const Halide::Func& bias) {
  const auto& [c, x, y, n] = layerVars();
  const Layer& layer = ctx.layer;
  const std::string& name = layer.name;
  int C = static_cast<int>(ctx.inputs[0]->shape.channels());
  Size2 pad = layer.sizeAttr("pad");
  int px = static_cast<int>(pad.w), py = static_cast<int>(pad.h);
  Halide::Var i("i"), j("j"), r("r");

  Halide::Func rows(name + "_winograd_rows"), blocks(name + "_winograd_input");
  Halide::Expr d[4];
  for (int q = 0; q < 4; ++q) d[q] = input(c, 2 * x - px + q, 2 * y - py + r, n);
  rows(c, i, r, x, y, n) = inputTransform(d, i);
  for (int q = 0; q < 4; ++q) d[q] = rows(c, i, q, x, y, n);
  blocks(c, x, y, i, j, n) = inputTransform(d, j);

  int block = ctx.prepared->block;
  Halide::RDom rc(0, C, name + "_winograd_r");
  Halide::Func products(name + "_winograd_products");
  products(c, x, y, i, j, n) = 0.0f;
  products(c, x, y, i, j, n) +=
      ctx.preparedWeights(c % block, rc, i, j, c / block) * blocks(rc, x, y, i, j, n);

  Halide::Func conv(name + "_conv");
  Halide::Expr columnSums[4];
  for (int q = 0; q < 4; ++q) {
    Halide::Expr m[4];
    for (int p = 0; p < 4; ++p) m[p] = products(c, x / 2, y / 2, p, q, n);
    columnSums[q] = outputTransform(m, x % 2);
  }
  conv(c, x, y, n) = bias(c) + outputTransform(columnSums, y % 2);

  LoweredLayer out;
  out.value.func = Halide::Func(name);
  out.value.func(c, x, y, n) = applyActivation(conv(c, x, y, n), layer.identAttr("activation"));
  out.value.shape = layer.outputShape;
  out.stages["input"] = input;
  out.stages["bias"] = bias;
  out.stages["conv"] = conv;
  out.stages["winograd_rows"] = rows;
  out.stages["winograd_input"] = blocks;
  out.stages["winograd_products"] = products;
  out.reductions["winograd_products"] = rc;
  return out;
}

}  // namespace cnnc
