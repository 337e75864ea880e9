#include "LayerTable.h"

#include <algorithm>

#include <fmt/format.h>

namespace cnnc {

std::string withThousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string layerTable(const Network& net) {
  size_t nameWidth = 5, kindWidth = 4, shapeWidth = 6;
  for (const Layer& layer : net.layers) {
    nameWidth = std::max(nameWidth, layer.name.size());
    kindWidth = std::max(kindWidth, std::string(kindName(layer.kind)).size());
    shapeWidth = std::max(shapeWidth, layer.outputShape.str().size());
  }
  std::string out = fmt::format("network {}, input {}\n\n", net.name, net.inputShape.str());
  out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>13}  {:>12}\n", "layer", nameWidth, "kind",
                     kindWidth, "output", shapeWidth, "parameters", "MFLOPs");
  for (const Layer& layer : net.layers) {
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>13}  {:>12.3f}\n", layer.name, nameWidth,
                       kindName(layer.kind), kindWidth, layer.outputShape.str(), shapeWidth,
                       withThousands(layer.paramCount()), layer.forwardFlops / 1e6);
  }
  out += fmt::format("\ntotal: {} parameters, {:.3f} MFLOPs per example\n",
                     withThousands(net.paramCount()), net.forwardFlops() / 1e6);
  return out;
}

}  // namespace cnnc
