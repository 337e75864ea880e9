// One workload's forward pipeline: the algorithm (schedules/Conv2DAlgorithm.h)
// on dense buffers of fixed shape, scheduled by the template with `knobs`.
//
// Arguments, in order: input (c, x, y, n) channels innermost (NHWC in
// memory), the packed weight (packConv2DWeightsInto with packTile channels
// per block: done once at load time, as a network does), bias
// (k); output (k, x, y, n) channels innermost. No layout conversion is
// inside: between layers activations stay channels-innermost.
#pragma once

#include <Halide.h>

#include "Conv2DTemplate.h"
#include "ConvWorkloads.h"

namespace cnnc::bench {

struct ConvPipeline {
  Halide::ImageParam input{Halide::Float(32), 4, "input"};
  Halide::ImageParam weight{Halide::Float(32), 5, "weight"};
  Halide::ImageParam bias{Halide::Float(32), 1, "bias"};
  Conv2DFuncs funcs;
  Halide::Pipeline pipeline;
  int packTile = 0;  // output channels per block of the packed weight

  std::vector<Halide::Argument> arguments() const { return {input, weight, bias}; }
};

inline void denseBounds(Halide::OutputImageParam p, const std::vector<int>& extents) {
  int stride = 1;
  for (size_t d = 0; d < extents.size(); ++d) {
    p.dim(static_cast<int>(d)).set_bounds(0, extents[d]).set_stride(stride);
    stride *= extents[d];
  }
}

inline ConvPipeline buildConvPipeline(const ConvWorkload& w, const conv2d::Knobs& knobs) {
  ConvPipeline p;
  const Conv2DShape& s = w.shape;
  p.packTile = conv2d::packTile(s, knobs);
  p.funcs = conv2dForward(p.input, p.weight, p.bias, s, "conv", WeightLayout::Packed, p.packTile);
  conv2d::apply(p.funcs, s, w.batch, knobs);
  denseBounds(p.input, {s.channels, s.width, s.height, w.batch});
  denseBounds(p.weight, packedConv2DWeightExtents(s, p.packTile));
  denseBounds(p.bias, {s.filters});
  denseBounds(p.funcs.output.output_buffer(), {s.filters, s.outWidth(), s.outHeight(), w.batch});
  p.pipeline = Halide::Pipeline(p.funcs.output);
  return p;
}

}  // namespace cnnc::bench
