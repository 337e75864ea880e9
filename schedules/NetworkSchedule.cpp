#include "NetworkSchedule.h"

#include "Conv2DSchedule.h"

namespace cnnc {

using Halide::Func;
using Halide::TailStrategy;
using Halide::Var;

int floatVectorWidth(const Halide::Target& target) {
  if (target.has_feature(Halide::Target::AVX512)) return 16;
  if (target.has_feature(Halide::Target::AVX2) || target.has_feature(Halide::Target::AVX)) return 8;
  return 4;
}

bool isInlined(const Layer& layer) {
  switch (layer.kind) {
    case LayerKind::ReLU:
    case LayerKind::LeakyReLU:
    case LayerKind::Sigmoid:
    case LayerKind::Tanh:
    case LayerKind::Flatten:
    case LayerKind::Dropout:
    case LayerKind::BatchNorm:
      return true;
    default:
      return false;
  }
}

namespace {

// The vector width for `channels`: the natural one, or less for few channels.
int vectorFor(int64_t channels, int natural) {
  int width = natural;
  while (width > 4 && width > channels) width /= 2;
  return width;
}

// Parallel over rows and examples (or rows alone for a single example).
void parallelRows(Func f, const ScheduleOptions& options) {
  const auto& v = layerVars();
  if (options.batchOne) {
    f.parallel(v.y);
  } else {
    Var yn("yn");
    f.fuse(v.y, v.n, yn).parallel(yn);
  }
}

void scheduleChannelwise(LoweredLayer& lowered, int64_t channels, const ScheduleOptions& options) {
  const auto& v = layerVars();
  int vec = vectorFor(channels, floatVectorWidth(options.target));
  lowered.value.func.compute_root().vectorize(v.c, vec, TailStrategy::GuardWithIf);
  parallelRows(lowered.value.func, options);
}

void scheduleDense(const Layer& layer, LoweredLayer& lowered, const ScheduleOptions& options) {
  const auto& v = layerVars();
  int vec = vectorFor(layer.outputShape.channels(), floatVectorWidth(options.target));
  Func out = lowered.value.func, sum = lowered.stages.at("sum");
  out.compute_root().vectorize(v.c, vec, TailStrategy::GuardWithIf);
  if (!options.batchOne) out.parallel(v.n);
  sum.compute_at(out, v.n).vectorize(v.c, vec, TailStrategy::GuardWithIf);
  sum.update().vectorize(v.c, vec, TailStrategy::GuardWithIf);
}

void scheduleSoftmax(LoweredLayer& lowered) {
  const auto& v = layerVars();
  Func out = lowered.value.func;
  out.compute_root();
  lowered.stages.at("max").compute_at(out, v.n);
  lowered.stages.at("exp").compute_at(out, v.n);
  lowered.stages.at("total").compute_at(out, v.n);
}

}  // namespace

void scheduleForward(const Network& net, LoweredNetwork& lowered, const ScheduleOptions& options) {
  for (size_t i = 0; i < net.layers.size(); ++i) {
    const Layer& layer = net.layers[i];
    LoweredLayer& lowered_layer = lowered.layers[i];
    if (lowered.folded[i] || isInlined(layer)) {
      for (const char* stage : {"scale", "shift"})
        if (lowered_layer.stages.count(stage)) lowered_layer.stages.at(stage).compute_root();
      continue;
    }
    switch (layer.kind) {
      case LayerKind::Conv2D: {
        int producer = layer.inputs[0];
        bool materialized = producer != kInputIndex && !isInlined(net.layers[producer]);
        const Shape& in = net.shapeOf(producer);
        scheduleConv2D(layer, lowered_layer, defaultConv2DKnobs(layer, in, options.target, materialized),
                       options.batchOne);
        break;
      }
      case LayerKind::Dense: scheduleDense(layer, lowered_layer, options); break;
      case LayerKind::Softmax: scheduleSoftmax(lowered_layer); break;
      default: scheduleChannelwise(lowered_layer, layer.outputShape.channels(), options); break;
    }
  }
}

}  // namespace cnnc
