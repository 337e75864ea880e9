// The window rule shared by maxpool and avgpool (they differ only in what
// they compute over the window).
#pragma once

#include <fmt/format.h>

#include "../LayerKinds.h"
#include "../Lowering.h"
#include "../Training.h"

namespace cnnc {

inline std::vector<KeySpec> poolingKeys() {
  KeySpec stride = sizeKey("stride", "");
  stride.defaultFromKey = "kernel";
  return {sizeKey("kernel", ""), stride, sizeKey("pad", "0", 0)};
}

inline std::optional<Shape> poolingShape(ShapeContext& ctx) {
  if (!ctx.requireImage()) return std::nullopt;
  const Layer& layer = ctx.layer;
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride");
  Size2 pad = layer.sizeAttr("pad");
  // PyTorch's rule: a window must always hold some real input.
  if (2 * pad.h > kernel.h || 2 * pad.w > kernel.w)
    return ctx.error("pad", fmt::format("{} '{}': pad={} is more than half of kernel={}",
                                        kindName(layer.kind), layer.name, pad.str(), kernel.str()));
  auto h = windowOutputSize(ctx, "height", ctx.input().height(), kernel.h, stride.h, pad.h, 1);
  if (!h) return std::nullopt;
  auto w = windowOutputSize(ctx, "width", ctx.input().width(), kernel.w, stride.w, pad.w, 1);
  if (!w) return std::nullopt;
  return Shape{{ctx.input().channels(), *h, *w}};
}

inline double poolingFlops(const Layer& layer, const std::vector<Shape>&) {
  Size2 kernel = layer.sizeAttr("kernel");
  return double(layer.outputShape.elements()) * double(kernel.h * kernel.w);
}

// The window RDom and the input position it reads, shared by both pools.
struct PoolWindow {
  Halide::RDom r;
  Halide::Expr ix, iy;
  int size;
};

inline PoolWindow poolWindow(const Layer& layer) {
  const auto& v = layerVars();
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride"),
        pad = layer.sizeAttr("pad");
  Halide::RDom r(0, static_cast<int>(kernel.w), 0, static_cast<int>(kernel.h), "r");
  return {r, v.x * static_cast<int>(stride.w) - static_cast<int>(pad.w) + r.x,
          v.y * static_cast<int>(stride.h) - static_cast<int>(pad.h) + r.y,
          static_cast<int>(kernel.w * kernel.h)};
}

// Windows of up to this many values are written out term by term, so that
// they vectorize with their consumer; a reduction Func would run as a
// scalar loop per output.
constexpr int kUnrolledWindow = 16;

// The window's values in row-major order (ky, then kx), for unrolled windows.
inline std::vector<Halide::Expr> windowTerms(const Layer& layer, const Halide::Func& input) {
  const auto& v = layerVars();
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride"),
        pad = layer.sizeAttr("pad");
  std::vector<Halide::Expr> terms;
  for (int ky = 0; ky < kernel.h; ++ky)
    for (int kx = 0; kx < kernel.w; ++kx)
      terms.push_back(input(v.c, v.x * static_cast<int>(stride.w) - static_cast<int>(pad.w) + kx,
                            v.y * static_cast<int>(stride.h) - static_cast<int>(pad.h) + ky, v.n));
  return terms;
}

// The window's values combined pairwise (max, +), or by `reduce` over the
// window's RDom when it is too large to write out.
template <typename Combine, typename Reduce>
Halide::Expr reduceWindow(const Layer& layer, const Halide::Func& input, Combine combine,
                          Reduce reduce) {
  const auto& v = layerVars();
  PoolWindow window = poolWindow(layer);
  if (window.size > kUnrolledWindow) return reduce(input(v.c, window.ix, window.iy, v.n));
  std::vector<Halide::Expr> terms = windowTerms(layer, input);
  Halide::Expr total = terms[0];
  for (size_t i = 1; i < terms.size(); ++i) total = combine(total, terms[i]);
  return total;
}

// The windows that cover input position (x, y): for each kernel offset r,
// the output position (ox, oy) whose window puts r at (x, y), clamped, and
// whether that window exists (the stride divides, and it lies in the output).
struct CoveringWindows {
  Halide::RDom r;
  Halide::Expr ox, oy, exists;
};
inline CoveringWindows coveringWindows(const Layer& layer, const std::string& name) {
  const auto& v = layerVars();
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride"),
        pad = layer.sizeAttr("pad");
  Halide::RDom r(0, static_cast<int>(kernel.w), 0, static_cast<int>(kernel.h), name);
  int sw = static_cast<int>(stride.w), sh = static_cast<int>(stride.h);
  int outW = static_cast<int>(layer.outputShape.width()),
      outH = static_cast<int>(layer.outputShape.height());
  // Halide's / and % round toward -infinity, so a negative offset is no window.
  Halide::Expr nx = v.x + static_cast<int>(pad.w) - r.x, ny = v.y + static_cast<int>(pad.h) - r.y;
  Halide::Expr ox = nx / sw, oy = ny / sh;
  Halide::Expr exists =
      nx % sw == 0 && ny % sh == 0 && ox >= 0 && ox < outW && oy >= 0 && oy < outH;
  return {r, Halide::clamp(ox, 0, outW - 1), Halide::clamp(oy, 0, outH - 1), exists};
}

}  // namespace cnnc
