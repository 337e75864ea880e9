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

// Extents (k, ci, kx, ky) of a packed weight buffer for vectors of
// `vectorWidth` floats.
inline std::vector<int> packedConv2DWeightExtents(const Conv2DShape& s, int vectorWidth) {
  return {(s.filters + vectorWidth - 1) / vectorWidth * vectorWidth, s.channelsPerGroup(), s.kernelW, s.kernelH};
}

// Packs a PyTorch-layout weight (plain C++, for a runtime at load time):
// `packed` holds the product of packedConv2DWeightExtents.
inline void packConv2DWeightsInto(const float* weight, const Conv2DShape& s, int vectorWidth, float* packed) {
  std::vector<int> e = packedConv2DWeightExtents(s, vectorWidth);
  const int Cg = s.channelsPerGroup();
  for (int ky = 0; ky < s.kernelH; ++ky)
    for (int kx = 0; kx < s.kernelW; ++kx)
      for (int ci = 0; ci < Cg; ++ci)
        for (int k = 0; k < e[0]; ++k)
          packed[((size_t(ky) * s.kernelW + kx) * Cg + ci) * e[0] + k] =
              k < s.filters ? weight[((size_t(k) * Cg + ci) * s.kernelH + ky) * s.kernelW + kx] : 0.0f;
}

}  // namespace cnnc
