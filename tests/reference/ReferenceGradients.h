// A double-precision training-mode forward pass of every layer kind and the
// two losses, for checking gradients by central finite differences: in
// double, a small step leaves the difference quotient accurate to far below
// float32's rounding. Written from PyTorch's definitions in NCHW, apart from
// the float reference (Reference.h) so that it can be perturbed finely.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "IR.h"
#include "ReferenceNetwork.h"

namespace cnnc::reference {

struct Tensor64 {
  std::vector<int64_t> shape;
  std::vector<double> data;

  Tensor64() = default;
  explicit Tensor64(std::vector<int64_t> s)
      : shape(std::move(s)), data(Tensor::count(shape), 0.0) {}
  size_t size() const { return data.size(); }
  size_t at(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return ((static_cast<size_t>(a) * shape[1] + b) * shape[2] + c) * shape[3] + d;
  }
  double& operator()(int64_t a, int64_t b, int64_t c, int64_t d) { return data[at(a, b, c, d)]; }
  double operator()(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return data[at(a, b, c, d)];
  }
};

inline int64_t spatial(const Tensor64& x) {
  return static_cast<int64_t>(x.size()) / (x.shape[0] * x.shape[1]);
}

inline Tensor64 conv2d(const Tensor64& x, const Tensor64& w, const Tensor64* bias, Window win,
                       int64_t groups) {
  int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  int64_t K = w.shape[0], Cg = C / groups, Kg = K / groups;
  int64_t P = outputSize(H, win.kh, win.sh, win.ph, win.dh);
  int64_t Q = outputSize(W, win.kw, win.sw, win.pw, win.dw);
  Tensor64 y({N, K, P, Q});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      int64_t g = k / Kg;
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double sum = bias ? bias->data[k] : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < win.kh; ++r)
              for (int64_t s = 0; s < win.kw; ++s) {
                int64_t ih = p * win.sh - win.ph + r * win.dh;
                int64_t iw = q * win.sw - win.pw + s * win.dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                sum += x(n, g * Cg + c, ih, iw) * w(k, c, r, s);
              }
          y(n, k, p, q) = sum;
        }
    }
  return y;
}

// Max pooling (padding never wins) or average pooling (padding counts).
inline Tensor64 pool(const Tensor64& x, Window win, bool isMax) {
  int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  int64_t P = outputSize(H, win.kh, win.sh, win.ph, 1),
          Q = outputSize(W, win.kw, win.sw, win.pw, 1);
  Tensor64 y({N, C, P, Q});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          for (int64_t r = 0; r < win.kh; ++r)
            for (int64_t s = 0; s < win.kw; ++s) {
              int64_t ih = p * win.sh - win.ph + r, iw = q * win.sw - win.pw + s;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              best = std::max(best, x(n, c, ih, iw));
              sum += x(n, c, ih, iw);
            }
          y(n, c, p, q) = isMax ? best : sum / double(win.kh * win.kw);
        }
  return y;
}

inline Tensor64 globalAvgpool(const Tensor64& x) {
  int64_t N = x.shape[0], C = x.shape[1], S = spatial(x);
  Tensor64 y({N, C, 1, 1});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0;
      for (int64_t s = 0; s < S; ++s) sum += x.data[(n * C + c) * S + s];
      y.data[n * C + c] = sum / double(S);
    }
  return y;
}

inline Tensor64 dense(const Tensor64& x, const Tensor64& w, const Tensor64* bias) {
  int64_t N = x.shape[0], in = static_cast<int64_t>(x.size()) / N, out = w.shape[0];
  Tensor64 y({N, out});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double sum = bias ? bias->data[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) sum += x.data[n * in + i] * w.data[o * in + i];
      y.data[n * out + o] = sum;
    }
  return y;
}

// Per channel over every (n, position): the mean and the biased variance.
struct ChannelStatistics {
  std::vector<double> mean, biasedVariance, unbiasedVariance;
};

inline ChannelStatistics channelStatistics(const Tensor64& x) {
  int64_t N = x.shape[0], C = x.shape[1], S = spatial(x);
  double M = double(N * S);
  ChannelStatistics stats;
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0, squares = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) sum += x.data[(n * C + c) * S + s];
    double mean = sum / M;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        double d = x.data[(n * C + c) * S + s] - mean;
        squares += d * d;
      }
    stats.mean.push_back(mean);
    stats.biasedVariance.push_back(squares / M);
    stats.unbiasedVariance.push_back(squares / std::max(M - 1, 1.0));
  }
  return stats;
}

// torch.nn.BatchNorm in training mode: the batch's statistics, the biased
// variance normalizing.
inline Tensor64 batchnormTraining(const Tensor64& x, const Tensor64& gamma, const Tensor64& beta,
                                  double eps) {
  ChannelStatistics stats = channelStatistics(x);
  Tensor64 y = x;
  int64_t N = x.shape[0], C = x.shape[1], S = spatial(x);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        size_t i = (n * C + c) * S + s;
        y.data[i] =
            (x.data[i] - stats.mean[c]) / std::sqrt(stats.biasedVariance[c] + eps) * gamma.data[c] +
            beta.data[c];
      }
  return y;
}

inline double activate(double v, Activation a, double alpha) {
  switch (a) {
    case Activation::None:
      return v;
    case Activation::ReLU:
      return v > 0 ? v : 0.0;
    case Activation::LeakyReLU:
      return v > 0 ? v : alpha * v;
    case Activation::Sigmoid:
      return 1.0 / (1.0 + std::exp(-v));
    case Activation::Tanh:
      return std::tanh(v);
  }
  return v;
}

inline Tensor64 apply(Tensor64 x, Activation a, double alpha = 0.01) {
  for (double& v : x.data) v = activate(v, a, alpha);
  return x;
}

inline Tensor64 softmax(const Tensor64& x) {
  Tensor64 y = x;
  int64_t N = x.shape[0], C = x.shape[1], S = spatial(x);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < S; ++s) {
      double top = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t c = 0; c < C; ++c) top = std::max(top, x.data[(n * C + c) * S + s]);
      for (int64_t c = 0; c < C; ++c) sum += std::exp(x.data[(n * C + c) * S + s] - top);
      for (int64_t c = 0; c < C; ++c) {
        size_t i = (n * C + c) * S + s;
        y.data[i] = std::exp(x.data[i] - top) / sum;
      }
    }
  return y;
}

inline Tensor64 concat(const std::vector<const Tensor64*>& xs) {
  int64_t N = xs[0]->shape[0], S = spatial(*xs[0]), C = 0;
  for (const Tensor64* x : xs) C += x->shape[1];
  std::vector<int64_t> shape = xs[0]->shape;
  shape[1] = C;
  Tensor64 y(shape);
  int64_t offset = 0;
  for (const Tensor64* x : xs) {
    int64_t Cx = x->shape[1];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < Cx; ++c)
        for (int64_t s = 0; s < S; ++s)
          y.data[(n * C + offset + c) * S + s] = x->data[(n * Cx + c) * S + s];
    offset += Cx;
  }
  return y;
}

// Everything a training step's forward pass reads.
struct TrainingData {
  Tensor64 input;                          // NCHW, or [N, features]
  std::map<std::string, Tensor64> params;  // "layer.param", PyTorch layout
  std::map<int, Tensor64> dropoutMasks;    // by layer index: each element's keep-scale
  std::vector<int> labels;                 // cross_entropy
  Tensor64 targets;                        // mse: shaped like the output
};

// Every layer's output in training mode (batch statistics, dropout masks;
// a dropout layer without a mask is the identity).
inline std::vector<Tensor64> evaluateTraining(const Network& net, const TrainingData& data) {
  std::vector<Tensor64> outputs;
  int64_t batch = data.input.shape[0];
  for (size_t li = 0; li < net.layers.size(); ++li) {
    const Layer& layer = net.layers[li];
    std::vector<const Tensor64*> in;
    for (int i : layer.inputs) in.push_back(i == kInputIndex ? &data.input : &outputs[i]);
    auto param = [&](const std::string& name) -> const Tensor64& {
      return data.params.at(layer.name + "." + name);
    };
    const Tensor64* bias =
        layer.params.size() > 1 && layer.params[1].name == "bias" ? &param("bias") : nullptr;
    Tensor64 out;
    switch (layer.kind) {
      case LayerKind::Conv2D:
        out = apply(
            conv2d(*in[0], param("weight"), bias, windowOf(layer, true), layer.intAttr("groups")),
            activationNamed(layer.identAttr("activation")));
        break;
      case LayerKind::MaxPool:
        out = pool(*in[0], windowOf(layer, false), true);
        break;
      case LayerKind::AvgPool:
        out = pool(*in[0], windowOf(layer, false), false);
        break;
      case LayerKind::GlobalAvgPool:
        out = globalAvgpool(*in[0]);
        break;
      case LayerKind::Flatten:
        out = *in[0];
        out.shape = {batch, static_cast<int64_t>(out.size()) / batch};
        break;
      case LayerKind::Dense:
        out = apply(dense(*in[0], param("weight"), bias),
                    activationNamed(layer.identAttr("activation")));
        break;
      case LayerKind::BatchNorm:
        out = batchnormTraining(*in[0], param("weight"), param("bias"), layer.floatAttr("eps"));
        break;
      case LayerKind::Dropout: {
        out = *in[0];
        auto mask = data.dropoutMasks.find(static_cast<int>(li));
        if (mask != data.dropoutMasks.end())
          for (size_t i = 0; i < out.size(); ++i) out.data[i] *= mask->second.data[i];
        break;
      }
      case LayerKind::Add: {
        out = *in[0];
        for (size_t t = 1; t < in.size(); ++t)
          for (size_t i = 0; i < out.size(); ++i) out.data[i] += in[t]->data[i];
        out = apply(std::move(out), activationNamed(layer.identAttr("activation")));
        break;
      }
      case LayerKind::Concat:
        out = concat(in);
        break;
      case LayerKind::ReLU:
        out = apply(*in[0], Activation::ReLU);
        break;
      case LayerKind::LeakyReLU:
        out = apply(*in[0], Activation::LeakyReLU, layer.floatAttr("alpha"));
        break;
      case LayerKind::Sigmoid:
        out = apply(*in[0], Activation::Sigmoid);
        break;
      case LayerKind::Tanh:
        out = apply(*in[0], Activation::Tanh);
        break;
      case LayerKind::Softmax:
        out = softmax(*in[0]);
        break;
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

// The mean loss, as PyTorch's reduction='mean': MSELoss over every element
// of the output; CrossEntropyLoss over the examples, from the logits (the
// input of a trailing softmax, else the output).
inline double referenceLoss(const Network& net, const std::string& loss, const TrainingData& data) {
  std::vector<Tensor64> outputs = evaluateTraining(net, data);
  const Tensor64& out = outputs.back();
  if (loss == "mse") {
    double sum = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      double d = out.data[i] - data.targets.data[i];
      sum += d * d;
    }
    return sum / double(out.size());
  }
  const Layer& last = net.layers.back();
  int logitsIndex =
      last.kind == LayerKind::Softmax ? last.inputs[0] : static_cast<int>(net.layers.size()) - 1;
  const Tensor64& logits = logitsIndex == kInputIndex ? data.input : outputs[logitsIndex];
  int64_t N = logits.shape[0], C = static_cast<int64_t>(logits.size()) / N;
  double sum = 0;
  for (int64_t n = 0; n < N; ++n) {
    double top = -std::numeric_limits<double>::infinity(), total = 0;
    for (int64_t c = 0; c < C; ++c) top = std::max(top, logits.data[n * C + c]);
    for (int64_t c = 0; c < C; ++c) total += std::exp(logits.data[n * C + c] - top);
    sum += top + std::log(total) - logits.data[n * C + data.labels[n]];
  }
  return sum / double(N);
}

}  // namespace cnnc::reference
