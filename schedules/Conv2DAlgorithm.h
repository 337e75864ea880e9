// THE ALGORITHM of a 2-D convolution (as torch.nn.Conv2d), apart from its
// schedule (Conv2DTemplate.h), after Halide's apps/conv_layer.
//
// Layouts. Activations are channels-innermost, f(c, x, y, n) (NHWC in
// memory), so that the schedule vectorizes over output channels; the API's
// NCHW is converted at the network's boundary only. The weight comes in
// PyTorch's layout [K][C/groups][kh][kw], that is w(kx, ky, ci, k) here,
// and is packed into weights(k, ci, kx, ky), k innermost and zero for
// k >= K so that a schedule may round the output channels up to whole
// vectors. Either the pipeline packs it (WeightLayout::PyTorch, a stage
// computed once per call) or it arrives packed (WeightLayout::Packed: a
// network packs it once at load time, in blocks of `packTile` channels,
// packConv2DWeightsInto in Conv2DShape.h).
//
// To move into compiler/layers/Conv2D.cpp: it depends on Halide only.
#pragma once

#include <string>
#include <vector>

#include <Halide.h>

#include "Conv2DShape.h"

namespace cnnc {

enum class WeightLayout {
  PyTorch,  // w(kx, ky, ci, k): [K][C/groups][kh][kw]
  Packed,   // w(kk, ci, kx, ky, k / packTile), kk = k % packTile, zero for k >= K
};

// The Funcs of one forward convolution; the schedule works on these.
struct Conv2DFuncs {
  Halide::Var c{"c"}, x{"x"}, y{"y"}, n{"n"};
  Halide::Func input;    // (c, x, y, n): the input as the conv reads it, zero-padded when pad > 0
  Halide::Func weights;  // (k, ci, kx, ky): packed, zero for k >= K
  Halide::Func bias;     // (k): zero for k >= K or without bias
  Halide::Func conv;     // (k, x, y, n) = bias(k); += input * weights over r
  Halide::Func output;   // (k, x, y, n) = activation(conv)
  Halide::RDom r;        // (ci, kx, ky): input channel innermost
  bool padded = false;   // input is a boundary condition (the schedule should store it)
  bool weightsPacked = false;  // weights is the packed argument itself (nothing to schedule)
};

// `in`: (c, x, y, n) with c in [0, C), x in [0, width), y in [0, height).
// `weight`: in `layout`; `bias`: (k), ignored (may be undefined) when !shape.bias.
Conv2DFuncs conv2dForward(const Halide::Func& in, const Halide::Func& weight, const Halide::Func& bias,
                          const Conv2DShape& shape, const std::string& name = "conv",
                          WeightLayout layout = WeightLayout::PyTorch, int packTile = 0);

// The packed weight as a Func of the PyTorch one (the PyTorch-layout stage).
Halide::Func packConv2DWeights(const Halide::Func& weight, const Conv2DShape& shape, const std::string& name);

Halide::Expr applyConvActivation(const Halide::Expr& value, ConvActivation activation, float leakySlope);

}  // namespace cnnc
