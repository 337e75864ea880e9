// Plain-loop reference implementations of every layer kind, written straight
// from PyTorch's definitions in NCHW with double accumulation. They are the
// oracle for the generated code: slow, obvious, and independent of it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

namespace cnnc::reference {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s) : shape(std::move(s)), data(count(shape), 0.0f) {}
  static size_t count(const std::vector<int64_t>& s) {
    size_t n = 1;
    for (int64_t d : s) n *= static_cast<size_t>(d);
    return n;
  }
  size_t size() const { return data.size(); }
  // Row-major index of (i0, i1, i2, i3) for a 4-D tensor.
  size_t at(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return ((static_cast<size_t>(a) * shape[1] + b) * shape[2] + c) * shape[3] + d;
  }
  float& operator()(int64_t a, int64_t b, int64_t c, int64_t d) { return data[at(a, b, c, d)]; }
  float operator()(int64_t a, int64_t b, int64_t c, int64_t d) const { return data[at(a, b, c, d)]; }
};

struct Window {
  int64_t kh, kw, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
};

inline int64_t outputSize(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

// torch.nn.functional.conv2d
inline Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Window win, int64_t groups) {
  int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  int64_t K = w.shape[0], Cg = C / groups, Kg = K / groups;
  int64_t P = outputSize(H, win.kh, win.sh, win.ph, win.dh);
  int64_t Q = outputSize(W, win.kw, win.sw, win.pw, win.dw);
  Tensor y({N, K, P, Q});
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
                sum += double(x(n, g * Cg + c, ih, iw)) * double(w(k, c, r, s));
              }
          y(n, k, p, q) = static_cast<float>(sum);
        }
    }
  return y;
}

// torch.nn.MaxPool2d: padding never wins the max.
inline Tensor maxpool(const Tensor& x, Window win) {
  int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  int64_t P = outputSize(H, win.kh, win.sh, win.ph, 1), Q = outputSize(W, win.kw, win.sw, win.pw, 1);
  Tensor y({N, C, P, Q});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          float best = -std::numeric_limits<float>::infinity();
          for (int64_t r = 0; r < win.kh; ++r)
            for (int64_t s = 0; s < win.kw; ++s) {
              int64_t ih = p * win.sh - win.ph + r, iw = q * win.sw - win.pw + s;
              if (ih >= 0 && ih < H && iw >= 0 && iw < W) best = std::max(best, x(n, c, ih, iw));
            }
          y(n, c, p, q) = best;
        }
  return y;
}

// torch.nn.AvgPool2d with count_include_pad=True, ceil_mode=False.
inline Tensor avgpool(const Tensor& x, Window win) {
  int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  int64_t P = outputSize(H, win.kh, win.sh, win.ph, 1), Q = outputSize(W, win.kw, win.sw, win.pw, 1);
  Tensor y({N, C, P, Q});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double sum = 0;
          for (int64_t r = 0; r < win.kh; ++r)
            for (int64_t s = 0; s < win.kw; ++s) {
              int64_t ih = p * win.sh - win.ph + r, iw = q * win.sw - win.pw + s;
              if (ih >= 0 && ih < H && iw >= 0 && iw < W) sum += x(n, c, ih, iw);
            }
          y(n, c, p, q) = static_cast<float>(sum / double(win.kh * win.kw));
        }
  return y;
}

inline Tensor globalAvgpool(const Tensor& x) {
  int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  Tensor y({N, C, 1, 1});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) sum += x(n, c, h, w);
      y(n, c, 0, 0) = static_cast<float>(sum / double(H * W));
    }
  return y;
}

// torch.nn.Linear on x viewed as [N, features] (row-major flatten).
inline Tensor dense(const Tensor& x, const Tensor& w, const Tensor* bias) {
  int64_t N = x.shape[0], in = static_cast<int64_t>(x.size()) / N, out = w.shape[0];
  Tensor y({N, out});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double sum = bias ? bias->data[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) sum += double(x.data[n * in + i]) * double(w.data[o * in + i]);
      y.data[n * out + o] = static_cast<float>(sum);
    }
  return y;
}

// Channels are axis 1; everything after it is "spatial" (1 for flat inputs).
inline int64_t spatial(const Tensor& x) { return static_cast<int64_t>(x.size()) / (x.shape[0] * x.shape[1]); }

// torch.nn.BatchNorm in eval mode (running statistics).
inline Tensor batchnormInference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 const Tensor& mean, const Tensor& var, double eps) {
  Tensor y = x;
  int64_t N = x.shape[0], C = x.shape[1], S = spatial(x);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        size_t i = (n * C + c) * S + s;
        y.data[i] = static_cast<float>((double(x.data[i]) - mean.data[c]) / std::sqrt(double(var.data[c]) + eps) *
                                           gamma.data[c] +
                                       beta.data[c]);
      }
  return y;
}

enum class Activation { None, ReLU, LeakyReLU, Sigmoid, Tanh };

inline float activate(float v, Activation a, double alpha = 0.01) {
  switch (a) {
    case Activation::None: return v;
    case Activation::ReLU: return v > 0 ? v : 0.0f;
    case Activation::LeakyReLU: return v > 0 ? v : static_cast<float>(alpha * v);
    case Activation::Sigmoid: return static_cast<float>(1.0 / (1.0 + std::exp(-double(v))));
    case Activation::Tanh: return static_cast<float>(std::tanh(double(v)));
  }
  return v;
}

inline Tensor apply(Tensor x, Activation a, double alpha = 0.01) {
  for (float& v : x.data) v = activate(v, a, alpha);
  return x;
}

// Softmax over axis 1 (channels), at every other position.
inline Tensor softmax(const Tensor& x) {
  Tensor y = x;
  int64_t N = x.shape[0], C = x.shape[1], S = spatial(x);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < S; ++s) {
      double top = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t c = 0; c < C; ++c) top = std::max(top, double(x.data[(n * C + c) * S + s]));
      for (int64_t c = 0; c < C; ++c) sum += std::exp(double(x.data[(n * C + c) * S + s]) - top);
      for (int64_t c = 0; c < C; ++c) {
        size_t i = (n * C + c) * S + s;
        y.data[i] = static_cast<float>(std::exp(double(x.data[i]) - top) / sum);
      }
    }
  return y;
}

inline Tensor add(const std::vector<const Tensor*>& xs) {
  Tensor y = *xs[0];
  for (size_t t = 1; t < xs.size(); ++t)
    for (size_t i = 0; i < y.size(); ++i) y.data[i] += xs[t]->data[i];
  return y;
}

// Concatenation along axis 1.
inline Tensor concat(const std::vector<const Tensor*>& xs) {
  int64_t N = xs[0]->shape[0], S = spatial(*xs[0]), C = 0;
  for (const Tensor* x : xs) C += x->shape[1];
  std::vector<int64_t> shape = xs[0]->shape;
  shape[1] = C;
  Tensor y(shape);
  int64_t offset = 0;
  for (const Tensor* x : xs) {
    int64_t Cx = x->shape[1];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < Cx; ++c)
        for (int64_t s = 0; s < S; ++s) y.data[(n * C + offset + c) * S + s] = x->data[(n * Cx + c) * S + s];
    offset += Cx;
  }
  return y;
}

}  // namespace cnnc::reference
