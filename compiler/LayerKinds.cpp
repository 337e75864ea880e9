#include "LayerKinds.h"

#include <fmt/format.h>

#include "Diagnostics.h"

namespace cnnc {

const std::vector<LayerKindInfo>& layerKinds() {
  static const std::vector<LayerKindInfo> kinds = {
      conv2dKind(), maxPoolKind(),   avgPoolKind(), globalAvgPoolKind(), flattenKind(),
      denseKind(),  batchNormKind(), dropoutKind(), addKind(),           concatKind(),
      reluKind(),   sigmoidKind(),   tanhKind(),    softmaxKind(),       leakyReluKind(),
  };
  return kinds;
}

const LayerKindInfo& kindInfo(LayerKind kind) {
  for (const auto& info : layerKinds())
    if (info.kind == kind) return info;
  internalError(__FILE__, __LINE__, fmt::format("layer kind {} has no registry row", int(kind)));
}

const LayerKindInfo* findKind(const std::string& name) {
  for (const auto& info : layerKinds())
    if (info.name == name) return &info;
  return nullptr;
}

const char* kindName(LayerKind kind) {
  return kindInfo(kind).name.c_str();
}

KeySpec activationKey() {
  KeySpec key{"activation", ValueType::Enum, "none"};
  key.choices = {"none", "relu", "leaky_relu", "sigmoid", "tanh"};
  return key;
}

KeySpec initKey() {
  KeySpec key{"init", ValueType::Enum, "default"};
  key.choices = {"default", "he_normal", "he_uniform", "xavier_uniform", "xavier_normal", "zeros"};
  return key;
}

KeySpec biasKey() {
  return {"bias", ValueType::Bool, "true"};
}

KeySpec sizeKey(const std::string& name, const std::string& defaultText, double min) {
  KeySpec key{name, ValueType::Size, defaultText};
  key.min = min;
  return key;
}

std::nullopt_t ShapeContext::error(const std::string& key, const std::string& message) {
  Location loc = layer.loc;
  for (const auto& [name, keyLoc] : keyLocations_)
    if (name == key) loc = keyLoc;
  diags_.error(loc, message);
  return std::nullopt;
}

bool ShapeContext::requireImage() {
  if (input().isImage()) return true;
  error("from", fmt::format("{} '{}' needs an image input (CxHxW), but '{}' is a flat vector of {}",
                            kindName(layer.kind), layer.name, inputNames.front(), input().str()));
  return false;
}

std::optional<int64_t> windowOutputSize(ShapeContext& ctx, const char* axis, int64_t in,
                                        int64_t kernel, int64_t stride, int64_t pad,
                                        int64_t dilation) {
  int64_t padded = in + 2 * pad;
  int64_t span = dilation * (kernel - 1) + 1;
  if (span > padded) {
    std::string dilated = dilation > 1 ? fmt::format(" (dilated to {})", span) : "";
    return ctx.error("kernel", fmt::format("{} '{}': the kernel's {} of {}{} is larger than the "
                                           "padded input's {} of {}",
                                           kindName(ctx.layer.kind), ctx.layer.name, axis, kernel,
                                           dilated, axis, padded));
  }
  return (padded - span) / stride + 1;
}

}  // namespace cnnc
