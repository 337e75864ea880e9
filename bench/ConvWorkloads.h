// The convolution workloads of BENCHMARKS.md (W1, W2), shared by the
// generator, the timing program and (by id) bench/conv_torch.py.
#pragma once

#include <string>
#include <vector>

#include "Conv2DShape.h"

namespace cnnc::bench {

struct ConvWorkload {
  std::string id;  // also the AOT function's name
  Conv2DShape shape;
  int batch;
};

inline Conv2DShape convShape(int C, int K, int kernel, int stride, int pad, int width, int height,
                             ConvActivation activation) {
  Conv2DShape s;
  s.channels = C;
  s.filters = K;
  s.kernelW = s.kernelH = kernel;
  s.strideX = s.strideY = stride;
  s.padX = s.padY = pad;
  s.width = width;
  s.height = height;
  s.bias = true;
  s.activation = activation;
  return s;
}

inline std::vector<ConvWorkload> convWorkloads() {
  const ConvActivation relu = ConvActivation::ReLU, none = ConvActivation::None;
  Conv2DShape w1 = convShape(128, 128, 3, 1, 0, 102, 82, relu);   // apps/conv_layer's shape
  Conv2DShape w2a = convShape(64, 64, 3, 1, 1, 56, 56, none);     // ResNet 3x3
  Conv2DShape w2b = convShape(256, 64, 1, 1, 0, 56, 56, none);    // ResNet 1x1 bottleneck
  Conv2DShape w2c = convShape(3, 64, 7, 2, 3, 224, 224, none);    // ResNet stem
  Conv2DShape w2d = convShape(128, 128, 3, 2, 1, 28, 28, none);   // ResNet downsampling 3x3
  return {
      {"W1", w1, 5},
      {"W2a_N1", w2a, 1}, {"W2a_N8", w2a, 8},
      {"W2b_N1", w2b, 1}, {"W2b_N8", w2b, 8},
      {"W2c_N1", w2c, 1}, {"W2c_N8", w2c, 8},
      {"W2d_N1", w2d, 1}, {"W2d_N8", w2d, 8},
  };
}

}  // namespace cnnc::bench
