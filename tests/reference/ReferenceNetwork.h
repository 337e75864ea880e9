// Runs a whole IR network through the plain-loop reference layers: the oracle
// for the generated pipelines, for any mix of layers.
#pragma once

#include <map>
#include <string>

#include "IR.h"
#include "Reference.h"

namespace cnnc::reference {

inline Activation activationNamed(const std::string& name) {
  if (name == "relu") return Activation::ReLU;
  if (name == "leaky_relu") return Activation::LeakyReLU;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "tanh") return Activation::Tanh;
  return Activation::None;
}

inline Window windowOf(const Layer& layer, bool withDilation) {
  Size2 k = layer.sizeAttr("kernel"), s = layer.sizeAttr("stride"), p = layer.sizeAttr("pad");
  Window w{k.h, k.w, s.h, s.w, p.h, p.w};
  if (withDilation) {
    Size2 d = layer.sizeAttr("dilation");
    w.dh = d.h, w.dw = d.w;
  }
  return w;
}

// Parameters by "layer.param" name, in PyTorch's layout. Returns every
// layer's output (batch first), in inference mode.
inline std::vector<Tensor> evaluate(const Network& net, const Tensor& input,
                                    const std::map<std::string, Tensor>& params) {
  std::vector<Tensor> outputs;
  int64_t batch = input.shape[0];
  for (const Layer& layer : net.layers) {
    std::vector<const Tensor*> in;
    for (int i : layer.inputs) in.push_back(i == kInputIndex ? &input : &outputs[i]);
    auto param = [&](const std::string& name) -> const Tensor& { return params.at(layer.name + "." + name); };
    const Tensor* bias = layer.params.size() > 1 && layer.params[1].name == "bias" ? &param("bias") : nullptr;
    Tensor out;
    switch (layer.kind) {
      case LayerKind::Conv2D:
        out = apply(conv2d(*in[0], param("weight"), bias, windowOf(layer, true), layer.intAttr("groups")),
                    activationNamed(layer.identAttr("activation")));
        break;
      case LayerKind::MaxPool: out = maxpool(*in[0], windowOf(layer, false)); break;
      case LayerKind::AvgPool: out = avgpool(*in[0], windowOf(layer, false)); break;
      case LayerKind::GlobalAvgPool: out = globalAvgpool(*in[0]); break;
      case LayerKind::Flatten:
        out = *in[0];
        out.shape = {batch, static_cast<int64_t>(out.size()) / batch};
        break;
      case LayerKind::Dense:
        out = apply(dense(*in[0], param("weight"), bias), activationNamed(layer.identAttr("activation")));
        break;
      case LayerKind::BatchNorm:
        out = batchnormInference(*in[0], param("weight"), param("bias"), param("running_mean"),
                                 param("running_var"), layer.floatAttr("eps"));
        break;
      case LayerKind::Dropout: out = *in[0]; break;
      case LayerKind::Add: out = apply(add(in), activationNamed(layer.identAttr("activation"))); break;
      case LayerKind::Concat: out = concat(in); break;
      case LayerKind::ReLU: out = apply(*in[0], Activation::ReLU); break;
      case LayerKind::LeakyReLU: out = apply(*in[0], Activation::LeakyReLU, layer.floatAttr("alpha")); break;
      case LayerKind::Sigmoid: out = apply(*in[0], Activation::Sigmoid); break;
      case LayerKind::Tanh: out = apply(*in[0], Activation::Tanh); break;
      case LayerKind::Softmax: out = softmax(*in[0]); break;
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

}  // namespace cnnc::reference
