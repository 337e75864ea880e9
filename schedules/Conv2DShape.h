// The shape of a 2-D convolution (as torch.nn.Conv2d), with no dependence
// on Halide so that programs calling compiled pipelines can include it.
#pragma once

#include <sstream>
#include <string>

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

}  // namespace cnnc
