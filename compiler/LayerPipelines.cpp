#include "LayerPipelines.h"

#include <algorithm>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "Lowering.h"
#include "NetworkSchedule.h"
#include "PreparedParams.h"

namespace cnnc {

namespace {

// A split of more stored layers than this compiles faster than one
// pipeline: LeNet-5 has 5 and compiles whole in seconds; ResNet-18 has 30.
constexpr int kWholePipelineLayers = 24;

// Per layer: the conv it is folded into, or -1 (none in the activations).
std::vector<int> foldedInto(const Network& net, ForwardEntry entry) {
  if (entry == ForwardEntry::Activations) return std::vector<int>(net.layers.size(), -1);
  return foldableBatchNorms(net);
}

ScheduleOptions entryOptions(ForwardEntry entry, const Halide::Target& target,
                             const ScheduleOverrides& overrides) {
  ScheduleOptions options{target, entry == ForwardEntry::BatchOne, &overrides};
  options.storesEveryLayer = entry == ForwardEntry::Activations;
  return options;
}

// What a layer computes, without its name: its kind, attributes (`from`
// lists names; the inputs are given as references instead) and shape.
std::string layerText(const Layer& layer) {
  std::string text = kindName(layer.kind);
  for (const Attribute& a : layer.attributes)
    if (a.key != "from" && a.key != "init")
      text += fmt::format(" {}={}", a.key, valueToString(a.value));
  return text + " -> " + layer.outputShape.str();
}

// The layer's function's text: equal texts compute the same thing from
// arguments of the same shapes, and share one compiled function.
std::string functionSignature(const Network& net, const LayerSplit& split, int i,
                              const std::vector<int>& members, int absorbed,
                              const ScheduleOverrides& overrides) {
  const std::vector<int>& sources = split.sources[i];
  auto reference = [&](int j) {
    auto source = std::find(sources.begin(), sources.end(), j);
    if (source != sources.end()) return fmt::format("S{}", source - sources.begin());
    auto member = std::find(members.begin(), members.end(), j);
    return fmt::format("M{}", member - members.begin());
  };
  std::string text;
  for (int s : sources) text += fmt::format("source {}\n", net.shapeOf(s).str());
  for (int j : members) {
    text += layerText(net.layers[j]);
    for (int in : net.layers[j].inputs) text += " " + reference(in);
    text += "\n";
  }
  if (absorbed >= 0) text += "folds " + layerText(net.layers[absorbed]) + "\n";
  if (overrides.count(i))
    for (const Attribute& a : overrides.at(i))
      text += fmt::format("knob {}={}\n", a.key, valueToString(a.value));
  return text;
}

}  // namespace

bool fitsLayerCalls(const Network& net, const LayerSplit& split) {
  for (size_t i = 0; i < split.sources.size(); ++i) {
    size_t params = 0;
    // A conv's or dense layer's are two prepared tensors (PreparedParams.h), at most.
    for (int layer : split.paramLayers[i]) {
      LayerKind kind = net.layers[layer].kind;
      bool prepared = kind == LayerKind::Conv2D || kind == LayerKind::Dense;
      params += std::max<size_t>(net.layers[layer].params.size(), prepared ? 2 : 0);
    }
    if (split.sources[i].size() > kMaxCallArguments || params > kMaxCallArguments) return false;
  }
  return true;
}

bool splitByDefault(const Network& net) {
  std::vector<int> folded = foldableBatchNorms(net);
  int stored = 0;
  for (size_t i = 0; i < net.layers.size(); ++i)
    if (folded[i] < 0 && !isInlined(net.layers[i])) ++stored;
  return stored > kWholePipelineLayers;
}

LayerSplit planLayerSplit(const Network& net, ForwardEntry entry,
                          const ScheduleOverrides& overrides, const std::string& entrySymbol) {
  const int count = static_cast<int>(net.layers.size());
  std::vector<int> folded = foldedInto(net, entry);
  std::vector<int> absorbs(count, -1);  // conv -> the batchnorm folded into it
  for (int j = 0; j < count; ++j)
    if (folded[j] >= 0) absorbs[folded[j]] = j;

  LayerSplit split;
  split.entry = entry;
  split.separate.assign(count, false);
  for (int i = 0; i < count; ++i)
    split.separate[i] = folded[i] < 0 && (entry == ForwardEntry::Activations ||
                                          !isInlined(net.layers[i]) || i == count - 1);
  split.sources.resize(count);
  split.paramLayers.resize(count);
  split.functionOf.assign(count, -1);

  std::map<std::string, int> functionOfSignature;
  for (int i = 0; i < count; ++i) {
    if (!split.separate[i]) continue;
    // The layers computed inline in i's function (folded batchnorms read as
    // their conv), back to the stored layers it reads.
    std::vector<int> members = {i};
    std::function<void(int)> visit = [&](int j) {
      if (j == kInputIndex || split.separate[j]) {
        std::vector<int>& sources = split.sources[i];
        if (std::find(sources.begin(), sources.end(), j) == sources.end()) sources.push_back(j);
        return;
      }
      if (std::find(members.begin(), members.end(), j) == members.end()) members.push_back(j);
      for (int in : net.layers[j].inputs) visit(in);
    };
    for (int in : net.layers[i].inputs) visit(in);
    std::sort(members.begin(), members.end());
    for (int j : members)
      if (folded[j] < 0 && !net.layers[j].params.empty()) split.paramLayers[i].push_back(j);
    if (absorbs[i] >= 0) split.paramLayers[i].push_back(absorbs[i]);

    std::string signature = functionSignature(net, split, i, members, absorbs[i], overrides);
    auto [found, isNew] =
        functionOfSignature.emplace(signature, static_cast<int>(split.functions.size()));
    if (isNew) split.functions.push_back({fmt::format("{}_layer{}", entrySymbol, i), i, 0});
    split.functionOf[i] = found->second;
    ++split.functions[found->second].uses;
  }
  return split;
}

Halide::Module layerFunctionModule(const Network& net, const LayerSplit& split, int function,
                                   const ScheduleOverrides& overrides,
                                   const std::vector<Halide::Target>& targets,
                                   const std::vector<PreparedLayer>& prepared,
                                   const Halide::Target& target, const std::string& name) {
  int i = split.functions[function].layer;
  bool activations = split.entry == ForwardEntry::Activations;
  ScheduleOptions options = entryOptions(split.entry, target, overrides);
  LoweredNetwork lowered = lowerNetwork(net, Purpose::Inference, !activations, Halide::Expr(),
                                        split.separate, convWeightBlocks(net, options), prepared);
  scheduleForward(net, lowered, options);

  std::vector<Halide::Argument> args;
  for (int source : split.sources[i]) {
    if (source == kInputIndex) {
      pinApiLayout(lowered.input, net.inputShape);
      args.push_back(lowered.input);
    } else {
      args.push_back(lowered.storedInputs[source]);
    }
  }
  for (int ref : callParameters(net, prepared, split.paramLayers[i]))
    args.push_back(ref >= 0 ? lowered.params[ref] : lowered.preparedParams[-1 - ref]);
  Halide::Func out = lowered.layers[i].value.func;
  std::array<int, 3> own = scheduledExtents(net, i, options);
  if (own != callExtents(net, split, i, overrides, targets)) {
    // The runtime's buffer covers what another target's variant writes,
    // which this one's schedule does not compute: a copy, the rest of it
    // (read by no consumer) filled with edge values.
    const auto& [c, x, y, n] = layerVars();
    Halide::Func copy(net.layers[i].name + "_copy");
    copy(c, x, y, n) =
        out(Halide::min(c, own[0] - 1), Halide::min(x, own[1] - 1), Halide::min(y, own[2] - 1), n);
    copy.compute_root().vectorize(c, floatVectorWidth(target), Halide::TailStrategy::GuardWithIf);
    out = copy;
  }
  for (int d = 0; d < 4; ++d) out.output_buffer().dim(d).set_min(0);
  return Halide::Pipeline(out).compile_to_module(args, name, target);
}

std::array<int, 3> callExtents(const Network& net, const LayerSplit& split, int layer,
                               const ScheduleOverrides& overrides,
                               const std::vector<Halide::Target>& targets) {
  std::array<int, 3> extents = {0, 0, 0};
  for (const Halide::Target& t : targets) {
    std::array<int, 3> e = scheduledExtents(net, layer, entryOptions(split.entry, t, overrides));
    for (int d = 0; d < 3; ++d) extents[d] = std::max(extents[d], e[d]);
  }
  return extents;
}

}  // namespace cnnc
