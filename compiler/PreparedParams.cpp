#include "PreparedParams.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "Conv2DSchedule.h"
#include "LayerKinds.h"
#include "NetworkSchedule.h"

namespace cnnc {

namespace {

// The index among the prepared layers (in layer order) of layer i's.
int preparedIndex(const std::vector<PreparedLayer>& prepared, int i) {
  int k = 0;
  for (int j = 0; j < i; ++j)
    if (prepared[j].layer >= 0) ++k;
  return k;
}

// What a prepare function computes, without names: equal texts share one.
std::string prepareSignature(const Network& net, const PreparedLayer& p) {
  const Layer& layer = net.layers[p.layer];
  std::string text =
      fmt::format("{} weight {} bias={} block {}x{}", kindInfo(layer.kind).name,
                  fmt::join(layer.params[0].shape, "x"), layer.boolAttr("bias"), p.block, p.blocks);
  if (p.batchNorm >= 0)
    text += fmt::format(" folds eps={}", net.layers[p.batchNorm].floatAttr("eps"));
  if (p.winograd) text += " winograd";
  return text;
}

}  // namespace

std::vector<PreparedLayer> planPreparedLayers(const Network& net,
                                              const ScheduleOverrides& overrides,
                                              const std::vector<Halide::Target>& targets,
                                              bool split) {
  auto options = [&](const Halide::Target& target, bool batchOne) {
    ScheduleOptions o{target, batchOne, &overrides};
    o.examplesFused = !split;
    o.writesApiOutput = !split;
    return o;
  };
  std::vector<int> blocks = convWeightBlocks(net, options(targets[0], false));
  std::vector<bool> winograd = winogradConvs(net, options(targets[0], false));
  std::vector<PreparedLayer> prepared(net.layers.size());
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& layer = net.layers[i];
    if (layer.kind != LayerKind::Conv2D && layer.kind != LayerKind::Dense) continue;
    int channels = 0;
    for (const Halide::Target& t : targets)
      for (bool batchOne : {false, true})
        channels = std::max(channels, layer.kind == LayerKind::Dense
                                          ? denseScheduledUnits(layer, options(t, batchOne))
                                          : scheduledExtents(net, i, options(t, batchOne))[0]);
    PreparedLayer& p = prepared[i];
    p.layer = static_cast<int>(i);
    if (layer.kind == LayerKind::Dense) {
      // Blocks of the widest unit tile (every tile divides it), so that a
      // tile's weights stream contiguously: a tile read across the rows of
      // all units touched a new page per feature (AlexNet's 4096-unit
      // layers at batch 1: 14.0 -> 15.7 ms).
      p.block = 0;
      for (const Halide::Target& t : targets) p.block = std::max(p.block, denseWidestTile(t));
      p.block = std::min(p.block, channels);
    } else {
      p.block = blocks[i] > 0 ? blocks[i] : channels;
      p.winograd = winograd[i];
    }
    p.blocks = (channels + p.block - 1) / p.block;
  }
  std::vector<int> folded = foldableBatchNorms(net);
  for (size_t j = 0; j < net.layers.size(); ++j)
    if (folded[j] >= 0) prepared[folded[j]].batchNorm = static_cast<int>(j);
  return prepared;
}

std::vector<int> prepareFunctionOf(const Network& net, const std::vector<PreparedLayer>& prepared) {
  std::map<std::string, int> functionOfSignature;
  std::vector<int> functionOf;
  for (const PreparedLayer& p : prepared) {
    if (p.layer < 0) continue;
    auto found = functionOfSignature.emplace(prepareSignature(net, p),
                                             static_cast<int>(functionOfSignature.size()));
    functionOf.push_back(found.first->second);
  }
  return functionOf;
}

std::vector<PrepareFunction> prepareFunctions(const Network& net,
                                              const std::vector<PreparedLayer>& prepared,
                                              const std::string& prefix) {
  std::vector<int> functionOf = prepareFunctionOf(net, prepared);
  std::vector<PrepareFunction> functions;
  int k = 0;
  for (const PreparedLayer& p : prepared) {
    if (p.layer < 0) continue;
    if (functionOf[k++] == static_cast<int>(functions.size()))
      functions.push_back({p.layer, fmt::format("{}_prepare{}", prefix, p.layer)});
  }
  return functions;
}

PreparePipeline preparePipeline(const Network& net, const std::vector<PreparedLayer>& prepared,
                                int layer, const Halide::Target& target) {
  const PreparedLayer& p = prepared[layer];
  // The layer as a forward pass that packs per call lowers it, in p's blocks.
  std::vector<int> blocks(net.layers.size(), 0);
  blocks[layer] = p.block;
  LoweredNetwork lowered = lowerNetwork(net, Purpose::Inference, true, Halide::Expr(), {}, blocks);
  LoweredLayer& lowered_layer = lowered.layers[layer];
  Halide::Func bias = lowered_layer.stages.at("bias"), packed;
  int vec = floatVectorWidth(target);
  Halide::TailStrategy tail =
      p.block % vec == 0 ? Halide::TailStrategy::RoundUp : Halide::TailStrategy::GuardWithIf;
  if (net.layers[layer].kind == LayerKind::Dense) {
    // Transposed in vec x vec tiles: each reads vec weight rows along
    // their features.
    Halide::Func transposed = lowered_layer.stages.at("packed");
    Halide::Var unit("unit"), feature("feature"), kx("kx"), ky("ky"), kb("kb");
    Halide::Var uo("uo"), ui("ui"), fo("fo"), fi("fi");
    packed = Halide::Func(net.layers[layer].name + "_prepared");
    packed(unit, feature, kx, ky, kb) = transposed(kb * p.block + unit, feature);
    packed.compute_root()
        .split(unit, uo, ui, vec, tail)
        .split(feature, fo, fi, vec, Halide::TailStrategy::GuardWithIf)
        .reorder(ui, fi, uo, fo, kb)
        .vectorize(ui)
        .parallel(fo);
  } else {
    packed = lowered_layer.stages.at("packed_weights");
    schedulePackedWeights(packed, net.layers[layer], vec, true, tail);
    if (p.winograd) {
      packed = winogradFilters(packed, net.layers[layer].name + "_winograd_filters");
      std::vector<Halide::Var> args = packed.args();  // (kv, ci, i, j, kb)
      packed.compute_root()
          .reorder(args[0], args[2], args[3], args[1], args[4])
          .vectorize(args[0], vec, tail)
          .unroll(args[2])
          .unroll(args[3])
          .parallel(args[1]);
    }
  }
  bias.compute_root().vectorize(layerVars().c, vec, Halide::TailStrategy::GuardWithIf);
  for (const char* stage : {"bn_scale", "bn_shift"})
    if (lowered_layer.stages.count(stage)) lowered_layer.stages.at(stage).compute_root();

  std::vector<int> extents = p.weightExtents(net);
  for (int d = 0; d < 5; ++d) packed.output_buffer().dim(d).set_bounds(0, extents[d]);
  bias.output_buffer().dim(0).set_bounds(0, p.channels());

  PreparePipeline result{Halide::Pipeline({packed, bias}), {}};
  for (int source : {layer, p.batchNorm}) {
    if (source < 0) continue;
    for (size_t i = 0; i < net.layers[source].params.size(); ++i)
      result.params.push_back(lowered.params[lowered.paramOffsets[source] + i]);
  }
  return result;
}

Halide::Module prepareModule(const Network& net, const std::vector<PreparedLayer>& prepared,
                             int layer, const Halide::Target& target, const std::string& name) {
  PreparePipeline prepare = preparePipeline(net, prepared, layer, target);
  std::vector<Halide::Argument> args(prepare.params.begin(), prepare.params.end());
  return prepare.pipeline.compile_to_module(args, name, target);
}

std::vector<int> callParameters(const Network& net, const std::vector<PreparedLayer>& prepared,
                                const std::vector<int>& layers) {
  std::vector<int> firstParam;  // per layer, its first row in the parameter table
  int rows = 0;
  for (const Layer& layer : net.layers) {
    firstParam.push_back(rows);
    rows += static_cast<int>(layer.params.size());
  }
  std::vector<bool> foldedAway(net.layers.size(), false);
  for (const PreparedLayer& p : prepared)
    if (p.layer >= 0 && p.batchNorm >= 0) foldedAway[p.batchNorm] = true;
  std::vector<int> refs;
  for (int layer : layers) {
    if (!prepared.empty() && prepared[layer].layer >= 0) {
      int k = preparedIndex(prepared, layer);
      refs.push_back(-1 - 2 * k);
      refs.push_back(-2 - 2 * k);
    } else if (!foldedAway[layer]) {
      for (size_t p = 0; p < net.layers[layer].params.size(); ++p)
        refs.push_back(firstParam[layer] + static_cast<int>(p));
    }
  }
  return refs;
}

}  // namespace cnnc
