// The shape of a 2-D convolution (as torch.nn.Conv2d), with no dependence
// on Halide so that programs calling compiled pipelines can include it.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace cnnc {

enum class ConvActivation { None, ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh };

struct Conv2DShape {
  int channels = 0;      // C: input channels
  int filters = 0;       // K: output channels
  int width = 0;         // input width and height, before padding
  int height = 0;
  int kernelW = 1, kernelH = 1;
  int strideX = 1, strideY = 1;
  int padX = 0, padY = 0;  // zero padding on both sides
  int dilationX = 1, dilationY = 1;
  int groups = 1;
  bool bias = true;
  ConvActivation activation = ConvActivation::None;
  float leakySlope = 0.01f;

  int outWidth() const { return (width + 2 * padX - dilationX * (kernelW - 1) - 1) / strideX + 1; }
  int outHeight() const { return (height + 2 * padY - dilationY * (kernelH - 1) - 1) / strideY + 1; }
  int channelsPerGroup() const { return channels / groups; }
  // 2*K*(C/groups)*kh*kw*P*Q per example.
  double flopsPerExample() const {
    return 2.0 * filters * channelsPerGroup() * kernelW * kernelH * double(outWidth()) * outHeight();
  }
  std::string str() const {  // e.g. "3x3 s1 p1 128->128 at 102x82"
    std::ostringstream s;
    s << kernelW << "x" << kernelH << " s" << strideX << " p" << padX << " " << channels << "->" << filters
      << " at " << width << "x" << height;
    if (groups != 1) s << " g" << groups;
    if (dilationX != 1 || dilationY != 1) s << " d" << dilationX;
    return s.str();
  }
};

// The packed weight: blocks of `tile` output channels (a multiple of the
// vector width; the register tile's channels, so that one tile's weights
// are one contiguous stream), each block (kk, ci, kx, ky) with kk innermost;
// zero for channels >= K. Extents (kk, ci, kx, ky, block).
inline std::vector<int> packedConv2DWeightExtents(const Conv2DShape& s, int tile) {
  return {tile, s.channelsPerGroup(), s.kernelW, s.kernelH, (s.filters + tile - 1) / tile};
}

// Packs a PyTorch-layout weight [K][C/groups][kh][kw] (plain C++, for a
// runtime at load time) into `packed`, the size of packedConv2DWeightExtents.
inline void packConv2DWeightsInto(const float* weight, const Conv2DShape& s, int tile, float* packed) {
  const int Cg = s.channelsPerGroup(), blocks = (s.filters + tile - 1) / tile;
  for (int b = 0; b < blocks; ++b)
    for (int ky = 0; ky < s.kernelH; ++ky)
      for (int kx = 0; kx < s.kernelW; ++kx)
        for (int ci = 0; ci < Cg; ++ci)
          for (int kk = 0; kk < tile; ++kk) {
            int k = b * tile + kk;
            *packed++ = k < s.filters ? weight[((size_t(k) * Cg + ci) * s.kernelH + ky) * s.kernelW + kx] : 0.0f;
          }
}

}  // namespace cnnc
