// The registry of layer kinds: for each kind its keys (types, defaults,
// ranges), how many inputs it takes, its shape rule, parameters and work.
// Each kind is defined in its own file under layers/; adding a kind adds one
// row to the table in LayerKinds.cpp.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "IR.h"

namespace cnnc {

class Diagnostics;

enum class ValueType {
  Int,      // 64
  Float,    // 0.05, 1e-5, 3
  Bool,     // true, false
  Size,     // N or HxW
  PadSize,  // N, HxW or `same`
  Enum,     // one identifier of `choices`
};

struct KeySpec {
  std::string name;
  ValueType type;
  std::string defaultText;  // as written in a file; empty: the key is required
  double min = 1, max = std::numeric_limits<int32_t>::max();
  bool minInclusive = true, maxInclusive = true;
  std::vector<std::string> choices;  // for Enum
  std::string defaultFromKey;        // the default copies this key (pool stride = kernel)

  bool required() const { return defaultText.empty() && defaultFromKey.empty(); }
};

// Largest size, and element count of one example's tensor: Halide buffers
// are indexed with 32-bit integers.
constexpr int64_t kMaxElements = std::numeric_limits<int32_t>::max();

// What a shape rule sees: the layer with every attribute filled, its input
// shapes, and a way to report an error at the key at fault.
class ShapeContext {
 public:
  ShapeContext(Layer& layer, std::vector<Shape> inputs, std::vector<std::string> inputNames,
               std::vector<std::pair<std::string, Location>> keyLocations, Diagnostics& diags)
      : layer(layer),
        inputs(std::move(inputs)),
        inputNames(std::move(inputNames)),
        keyLocations_(std::move(keyLocations)),
        diags_(diags) {}

  Layer& layer;
  const std::vector<Shape> inputs;
  const std::vector<std::string> inputNames;

  const Shape& input() const { return inputs.front(); }
  // Reports an error located at `key`'s value (or at the layer's kind when
  // the key was not written) and returns nullopt for the shape rule to return.
  std::nullopt_t error(const std::string& key, const std::string& message);
  // Requires the single input to be an image (CxHxW).
  bool requireImage();

 private:
  std::vector<std::pair<std::string, Location>> keyLocations_;
  Diagnostics& diags_;
};

struct LayerKindInfo {
  LayerKind kind;
  std::string name;
  std::vector<KeySpec> keys;
  int minInputs = 1, maxInputs = 1;
  // The output shape, or nullopt after reporting why there is none.
  std::optional<Shape> (*inferShape)(ShapeContext&) = nullptr;
  // Parameter tensors in PyTorch's names and layouts; none by default.
  std::vector<ParamSpec> (*params)(const Layer&, const std::vector<Shape>& inputs) = nullptr;
  // Forward FLOPs for one example.
  double (*flops)(const Layer&, const std::vector<Shape>& inputs) = nullptr;
};

const std::vector<LayerKindInfo>& layerKinds();
const LayerKindInfo& kindInfo(LayerKind kind);
const LayerKindInfo* findKind(const std::string& name);  // nullptr when unknown

// Keys that several kinds share.
KeySpec activationKey();
KeySpec initKey();
KeySpec biasKey();
KeySpec sizeKey(const std::string& name, const std::string& defaultText, double min = 1);

// Whether a conv2d may run by Winograd's F(2x2, 3x3) (layers/Conv2DWinograd.cpp):
// a 3x3 kernel at stride 1, no dilation or groups, an even output height and width.
bool fitsWinograd(const Layer& layer);

// The kinds, one per file under layers/.
LayerKindInfo conv2dKind();
LayerKindInfo maxPoolKind();
LayerKindInfo avgPoolKind();
LayerKindInfo globalAvgPoolKind();
LayerKindInfo flattenKind();
LayerKindInfo denseKind();
LayerKindInfo batchNormKind();
LayerKindInfo dropoutKind();
LayerKindInfo addKind();
LayerKindInfo concatKind();
LayerKindInfo reluKind();
LayerKindInfo leakyReluKind();
LayerKindInfo sigmoidKind();
LayerKindInfo tanhKind();
LayerKindInfo softmaxKind();

// The sliding-window output size (PyTorch's formula) along one axis, or
// nullopt after reporting a window that does not fit its padded input.
std::optional<int64_t> windowOutputSize(ShapeContext& ctx, const char* axis, int64_t in,
                                        int64_t kernel, int64_t stride, int64_t pad,
                                        int64_t dilation);

}  // namespace cnnc
