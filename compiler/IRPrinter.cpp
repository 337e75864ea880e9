#include "IRPrinter.h"

#include <fmt/format.h>

#include "Version.h"

namespace cnnc {

static std::string inputName(const Network& net, int index) {
  return index == kInputIndex ? "input" : net.layers[index].name;
}

std::string printIR(const Network& net) {
  std::string out =
      fmt::format("# IR of network {}, printed by cnnc {}: names, inputs and keys in full.\n",
                  net.name, kVersion);
  out += fmt::format("network {}\ninput {}\n\n", net.name, net.inputShape.str());
  for (const Layer& layer : net.layers) {
    std::vector<std::string> from;
    for (int i : layer.inputs) from.push_back(inputName(net, i));
    std::string line =
        fmt::format("{}: {} from={}", layer.name, kindName(layer.kind), fmt::join(from, ","));
    for (const Attribute& a : layer.attributes)
      line += fmt::format(" {}={}", a.key, valueToString(a.value));
    out +=
        fmt::format("{}  # {}, {} parameters\n", line, layer.outputShape.str(), layer.paramCount());
  }
  if (net.train) {
    out += "\ntrain";
    for (const Attribute& a : net.train->attributes)
      out += fmt::format(" {}={}", a.key, valueToString(a.value));
    out += "\n";
  }
  return out;
}

}  // namespace cnnc
