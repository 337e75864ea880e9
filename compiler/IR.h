// The IR: a checked network, the output of semantic analysis and the input of
// every later stage. Layers are in file order, which is a topological order
// because `from=` may only name earlier layers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "Location.h"

namespace cnnc {

enum class LayerKind {
  Conv2D,
  MaxPool,
  AvgPool,
  GlobalAvgPool,
  Flatten,
  Dense,
  BatchNorm,
  Dropout,
  Add,
  Concat,
  ReLU,
  Sigmoid,
  Tanh,
  Softmax,
  LeakyReLU,
};

// The spelling of a kind in a .net file (`conv2d`, `maxpool`, ...).
const char* kindName(LayerKind kind);

// One example's shape: {C, H, W} for images, {N} for flat vectors.
struct Shape {
  std::vector<int64_t> dims;

  bool isImage() const { return dims.size() == 3; }
  bool isFlat() const { return dims.size() == 1; }
  int64_t channels() const { return dims[0]; }
  int64_t height() const { return dims[1]; }
  int64_t width() const { return dims[2]; }
  int64_t elements() const;
  std::string str() const;  // "6x28x28" or "120"
  bool operator==(const Shape& o) const { return dims == o.dims; }
  bool operator!=(const Shape& o) const { return dims != o.dims; }
};

// An (height, width) pair: kernel, stride, pad and dilation sizes.
struct Size2 {
  int64_t h = 0, w = 0;
  bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
  std::string str() const;  // "5" when square, else "3x5"
};

// A resolved attribute value. Identifiers (activation names, init schemes,
// booleans spelled as words) are kept as strings; `from` lists as string lists.
using Value = std::variant<int64_t, double, bool, std::string, Size2, std::vector<std::string>>;
std::string valueToString(const Value& v);

struct Attribute {
  std::string key;
  Value value;
  bool operator==(const Attribute& o) const { return key == o.key && value == o.value; }
};

// A learnable tensor or persistent buffer of a layer, named and laid out as
// PyTorch names and lays it out (`conv1.weight` is [K, C/groups, kh, kw]).
struct ParamSpec {
  std::string name;            // "weight", "bias", "running_mean", ...
  std::vector<int64_t> shape;  // PyTorch layout
  bool trainable = true;       // false for batchnorm running statistics
  int64_t elements() const;
};

constexpr int kInputIndex = -1;  // `inputs` entry that names the network input

struct Layer {
  std::string name;
  LayerKind kind = LayerKind::ReLU;
  Location loc;
  std::vector<int> inputs;            // earlier layer indices, or kInputIndex
  std::vector<Attribute> attributes;  // every key of the kind, defaults filled
  Shape outputShape;
  std::vector<ParamSpec> params;

  // Typed attribute access; the key must exist (sema fills every key).
  const Value& attr(const std::string& key) const;
  int64_t intAttr(const std::string& key) const;
  double floatAttr(const std::string& key) const;
  bool boolAttr(const std::string& key) const;
  const std::string& identAttr(const std::string& key) const;
  Size2 sizeAttr(const std::string& key) const;

  int64_t paramCount() const;  // trainable elements, as PyTorch's parameters()
  double forwardFlops = 0;     // per example
};

struct TrainSettings {
  std::vector<Attribute> attributes;  // every key that applies, defaults filled
  Location loc;

  bool has(const std::string& key) const;
  const Value& attr(const std::string& key) const;
  double floatAttr(const std::string& key) const;
  int64_t intAttr(const std::string& key) const;
  bool boolAttr(const std::string& key) const;
  const std::string& identAttr(const std::string& key) const;
};

struct Network {
  std::string name;
  Location loc;
  Shape inputShape;
  std::vector<Layer> layers;
  std::optional<TrainSettings> train;  // present when the file has `train`

  const Layer& output() const { return layers.back(); }
  const Shape& outputShape() const { return layers.back().outputShape; }
  const Shape& shapeOf(int index) const {
    return index == kInputIndex ? inputShape : layers[index].outputShape;
  }
  int64_t paramCount() const;
  double forwardFlops() const;
  int find(const std::string& layerName) const;  // index, or -2 when absent
};

// Structural equality over everything but source locations: what the IR
// round trip (print, parse back) must preserve.
bool sameNetwork(const Network& a, const Network& b);

}  // namespace cnnc
