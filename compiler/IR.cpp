#include "IR.h"

#include <fmt/format.h>

#include "Diagnostics.h"

namespace cnnc {

int64_t Shape::elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string Shape::str() const {
  return fmt::format("{}", fmt::join(dims, "x"));
}

std::string Size2::str() const {
  return h == w ? fmt::format("{}", h) : fmt::format("{}x{}", h, w);
}

std::string valueToString(const Value& v) {
  struct Printer {
    std::string operator()(int64_t i) const { return fmt::format("{}", i); }
    // Shortest text that reads back as the same double.
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const Size2& s) const { return s.str(); }
    std::string operator()(const std::vector<std::string>& list) const {
      return fmt::format("{}", fmt::join(list, ","));
    }
  };
  return std::visit(Printer{}, v);
}

int64_t ParamSpec::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

static const Value& findAttribute(const std::vector<Attribute>& attributes, const std::string& key,
                                  const std::string& owner) {
  for (const auto& a : attributes)
    if (a.key == key) return a.value;
  internalError(__FILE__, __LINE__, fmt::format("'{}' has no attribute '{}'", owner, key));
}

template <typename T>
static const T& typed(const Value& v, const std::string& key) {
  const T* value = std::get_if<T>(&v);
  if (!value)
    internalError(__FILE__, __LINE__, fmt::format("attribute '{}' has another type", key));
  return *value;
}

const Value& Layer::attr(const std::string& key) const {
  return findAttribute(attributes, key, name);
}
int64_t Layer::intAttr(const std::string& key) const {
  return typed<int64_t>(attr(key), key);
}
double Layer::floatAttr(const std::string& key) const {
  return typed<double>(attr(key), key);
}
bool Layer::boolAttr(const std::string& key) const {
  return typed<bool>(attr(key), key);
}
const std::string& Layer::identAttr(const std::string& key) const {
  return typed<std::string>(attr(key), key);
}
Size2 Layer::sizeAttr(const std::string& key) const {
  return typed<Size2>(attr(key), key);
}

int64_t Layer::paramCount() const {
  int64_t n = 0;
  for (const auto& p : params)
    if (p.trainable) n += p.elements();
  return n;
}

bool TrainSettings::has(const std::string& key) const {
  for (const auto& a : attributes)
    if (a.key == key) return true;
  return false;
}
const Value& TrainSettings::attr(const std::string& key) const {
  return findAttribute(attributes, key, "train");
}
double TrainSettings::floatAttr(const std::string& key) const {
  return typed<double>(attr(key), key);
}
int64_t TrainSettings::intAttr(const std::string& key) const {
  return typed<int64_t>(attr(key), key);
}
bool TrainSettings::boolAttr(const std::string& key) const {
  return typed<bool>(attr(key), key);
}
const std::string& TrainSettings::identAttr(const std::string& key) const {
  return typed<std::string>(attr(key), key);
}

int64_t Network::paramCount() const {
  int64_t n = 0;
  for (const auto& layer : layers) n += layer.paramCount();
  return n;
}

double Network::forwardFlops() const {
  double n = 0;
  for (const auto& layer : layers) n += layer.forwardFlops;
  return n;
}

int Network::find(const std::string& layerName) const {
  if (layerName == "input") return kInputIndex;
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].name == layerName) return static_cast<int>(i);
  return -2;
}

static bool sameParams(const std::vector<ParamSpec>& a, const std::vector<ParamSpec>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].shape != b[i].shape || a[i].trainable != b[i].trainable)
      return false;
  return true;
}

bool sameNetwork(const Network& a, const Network& b) {
  if (a.name != b.name || a.inputShape != b.inputShape || a.layers.size() != b.layers.size())
    return false;
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const Layer& x = a.layers[i];
    const Layer& y = b.layers[i];
    if (x.name != y.name || x.kind != y.kind || x.inputs != y.inputs ||
        x.attributes != y.attributes || x.outputShape != y.outputShape ||
        !sameParams(x.params, y.params) || x.forwardFlops != y.forwardFlops)
      return false;
  }
  if (a.train.has_value() != b.train.has_value()) return false;
  return !a.train || a.train->attributes == b.train->attributes;
}

}  // namespace cnnc
