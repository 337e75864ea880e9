#include "NetworkSchedule.h"

#include <algorithm>
#include <cmath>

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

bool runsInParallel(const ScheduleOptions& options, double flops) {
  constexpr double kSerialFlops = 2e6;
  return !options.serialRows && (!options.batchOne || flops >= kSerialFlops);
}

void parallelTasks(Halide::Stage stage, const Var& var, double flopsPerIteration) {
  constexpr double kTaskFlops = 256e3;
  double iterations = std::ceil(kTaskFlops / std::max(flopsPerIteration, 1.0));
  if (iterations >= 2)
    stage.parallel(var, static_cast<int>(std::min(iterations, 65536.0)), TailStrategy::GuardWithIf);
  else
    stage.parallel(var);
}

void parallelRows(Func f, const ScheduleOptions& options, double flops, int64_t rows,
                  const Var& row) {
  const auto& v = layerVars();
  if (!runsInParallel(options, flops)) return;
  double flopsPerRow = flops / double(std::max<int64_t>(rows, 1));
  if (!options.batchOne) {
    Var yn("yn");
    f.fuse(row, v.n, yn);
    parallelTasks(f, yn, flopsPerRow);
  } else {
    parallelTasks(f, row, flopsPerRow);
  }
}

namespace {

// The vector width for `channels`: the natural one, or less for few channels.
int vectorFor(int64_t channels, int natural) {
  int width = natural;
  while (width > 4 && width > channels) width /= 2;
  return width;
}

void scheduleChannelwise(const Layer& layer, LoweredLayer& lowered,
                         const ScheduleOptions& options) {
  const auto& v = layerVars();
  int vec = vectorFor(layer.outputShape.channels(), floatVectorWidth(options.target));
  lowered.value.func.compute_root().vectorize(v.c, vec, TailStrategy::GuardWithIf);
  // Flat values (a channelwise layer after dense ones) are one row.
  int64_t rows = layer.outputShape.isImage() ? layer.outputShape.height() : 1;
  parallelRows(lowered.value.func, options, layer.forwardFlops, rows);
}

// Dense layers: register tiles of units, the weights read with units
// innermost (prepared so once per change of the parameters, or transposed on
// every call where they are not), each input feature broadcast to a tile.
// One example: a tile of up to 8 vectors of units accumulated over the whole
// reduction, so 8 independent FMA chains and no horizontal sums (LeNet-5's
// batch-1 dense layers had spent 40% of its time on per-unit dot products
// and their sums). Batches: tiles of up to 4 vectors of units x 4 examples,
// each weight vector loaded serving four examples.
void scheduleDense(const Layer& layer, LoweredLayer& lowered, bool inputIsStoredVector,
                   const ScheduleOptions& options) {
  const auto& v = layerVars();
  int vec = floatVectorWidth(options.target);
  Func out = lowered.value.func, sum = lowered.stages.at("sum");
  const Halide::RDom& r = lowered.reductions.at("sum");
  bool prepared = !lowered.stages.count("packed");
  if (!prepared) {
    lowered.stages.at("bias").compute_root();
    Var f("f"), fo("fo");
    lowered.stages.at("packed")
        .compute_root()
        .vectorize(v.c, vec, TailStrategy::RoundUp)
        .split(f, fo, f, 64, TailStrategy::GuardWithIf)
        .parallel(fo);
  }
  if (!inputIsStoredVector) lowered.stages.at("flat").compute_root();
  int tile = denseUnitTile(layer.outputShape.channels(), options);
  int rounded = denseScheduledUnits(layer, options);
  // The units round up to whole tiles (the weights and the bias are zero
  // there).
  Var co("co"), ci("ci"), no("no"), ni("ni"), task("task");
  out.compute_root().vectorize(v.c, vec, TailStrategy::GuardWithIf);
  sum.compute_root().bound(v.c, 0, rounded).vectorize(v.c, vec);
  if (options.batchOne) {
    Halide::Stage update = sum.update();
    update.split(v.c, co, ci, tile).reorder(ci, r.x, co, v.n).vectorize(ci, vec).unroll(ci);
    if (runsInParallel(options, layer.forwardFlops)) update.parallel(co);
    return;
  }
  out.parallel(v.n);
  sum.parallel(v.n);
  sum.update()
      .split(v.c, co, ci, tile)
      .split(v.n, no, ni, 4, TailStrategy::GuardWithIf)
      .reorder(ci, ni, r.x, co, no)
      .vectorize(ci, vec)
      .unroll(ci)
      .unroll(ni)
      .fuse(co, no, task)
      .parallel(task);
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

void scheduleApiOutput(Func output, Func producer, const Shape& shape,
                       const ScheduleOptions& options) {
  const auto& [c, x, y, n] = layerVars();
  int vec = floatVectorWidth(options.target);
  output.compute_root();
  if (!shape.isImage()) {
    if (shape.dims[0] >= vec) output.vectorize(c, vec, TailStrategy::ShiftInwards);
    return;
  }
  // Narrower tiles for narrower maps (W2d's 14 columns: 8x8).
  while (vec > 4 && (shape.width() < vec || shape.channels() < vec)) vec /= 2;
  if (shape.width() >= vec && shape.channels() >= vec) {
    // A vec x vec tile transposed in registers: vec dense loads of channels,
    // shuffles, vec dense stores of columns (a gather per element instead
    // cost more than W2c's whole convolution at batch 1).
    Var xo("xo"), xi("xi"), co("co"), ci("ci");
    output.tile(x, c, xo, co, xi, ci, vec, vec, TailStrategy::ShiftInwards)
        .reorder(xi, ci, xo, co, y, n)
        .vectorize(xi)
        .unroll(ci);
    Func loads = producer.in(output), transposed = loads.in(output);
    loads.compute_at(output, xo).vectorize(c).unroll(x);
    transposed.reorder_storage(x, c, y, n).compute_at(output, xo).vectorize(x).unroll(c);
  }
  // A copy costs far more per element than a flop: counted as 16.
  parallelRows(output, options, 16.0 * double(shape.elements()), shape.height());
}

bool isStored(const Network& net, const LoweredNetwork& lowered, size_t i,
              const ScheduleOptions& options) {
  return !lowered.folded[i] && (options.storesEveryLayer || !isInlined(net.layers[i]));
}

namespace {

// A core's L2, about: what a separate pass over a feature map reads from
// cache rather than from memory.
constexpr double kCoreCacheBytes = 1024 * 1024;

// Whether layer i, the last, is a conv that computes its register tiles
// straight into the API's NCHW output, each tile transposed in registers as
// it is stored. Only where the output of a call outgrows a core's L2 (at
// batch N, two examples' of it): a separate transpose pass then re-reads it
// from memory (W2c 1.22 -> 1.16 ms at batch 1, 11.2 -> 9.3 at batch 8; W2a
// 8.0 -> 7.5 at batch 8), while from L2 the pass costs less than the
// transposing stores (W2a and W2b at batch 1, W2d at batch 8: 6-11% slower).
bool storesApiOutput(const Network& net, size_t i, const ScheduleOptions& options) {
  const Layer& layer = net.layers[i];
  if (!options.writesApiOutput || i + 1 != net.layers.size() || layer.kind != LayerKind::Conv2D ||
      options.storesEveryLayer)
    return false;
  double bytes = 4.0 * double(layer.outputShape.elements());
  return bytes > (options.batchOne ? kCoreCacheBytes : kCoreCacheBytes / 2);
}

// Register tiles that the API's output can be split into: channel vectors
// (not columns), whole channel tiles, no more columns or rows than it has.
bool tilesApiOutput(const Conv2DKnobs& knobs, const Shape& shape) {
  bool wholeChannelTiles = shape.channels() % (knobs.vectorWidth * knobs.channelVectors) == 0;
  if (knobs.winograd) {
    // Columns a vector of the transpose: a power of two, at most a vector.
    int columns = 2 * knobs.winogradTiles;
    return wholeChannelTiles && (columns & (columns - 1)) == 0 && columns <= knobs.vectorWidth;
  }
  return !knobs.vectorizeColumns && wholeChannelTiles && shape.width() >= knobs.tileX &&
         shape.height() >= knobs.tileY;
}

Conv2DKnobs conv2DKnobs(const Network& net, size_t i, const ScheduleOptions& options) {
  const Layer& layer = net.layers[i];
  const Shape& input = net.shapeOf(layer.inputs[0]);
  bool readsNchw = layer.inputs[0] == kInputIndex;
  bool storesNchw = storesApiOutput(net, i, options);
  Conv2DKnobs knobs = defaultConv2DKnobs(layer, input, options.target, storesNchw, readsNchw);
  if (storesNchw && !tilesApiOutput(knobs, layer.outputShape))
    knobs = defaultConv2DKnobs(layer, input, options.target, false, readsNchw);
  const std::vector<Attribute>* given = nullptr;
  if (options.overrides && options.overrides->count(static_cast<int>(i)))
    given = &options.overrides->at(static_cast<int>(i));
  if (given) applyKnobs(knobs, *given, layer);
  // Chosen after the file's knobs (its materialize_input among them),
  // unless it sets this one. The batch entry point runs two examples or
  // more (one runs the other).
  bool rowsGiven = given && std::any_of(given->begin(), given->end(),
                                        [](const Attribute& a) { return a.key == "task_rows"; });
  if (!rowsGiven) knobs.taskRows = defaultTaskRows(layer, knobs, options.batchOne ? 1 : 2);
  return knobs;
}

// Whether the last layer computes its tiles into the API's output.
bool convWritesApiOutput(const Network& net, const ScheduleOptions& options) {
  size_t last = net.layers.size() - 1;
  return storesApiOutput(net, last, options) &&
         tilesApiOutput(conv2DKnobs(net, last, options), net.layers[last].outputShape);
}

}  // namespace

std::array<int, 3> scheduledExtents(const Network& net, size_t i, const ScheduleOptions& options) {
  const Layer& layer = net.layers[i];
  const Shape& shape = layer.outputShape;
  std::array<int, 3> extents = {static_cast<int>(shape.channels()), 1, 1};
  if (shape.isImage())
    extents = {static_cast<int>(shape.channels()), static_cast<int>(shape.width()),
               static_cast<int>(shape.height())};
  if (layer.kind == LayerKind::Conv2D) {
    Conv2DKnobs knobs = conv2DKnobs(net, i, options);
    extents[0] = static_cast<int>(scheduledChannels(layer, knobs));
    extents[1] = static_cast<int>(scheduledWidth(layer, knobs));
  }
  return extents;
}

int denseUnitTile(int64_t units, const ScheduleOptions& options) {
  int vec = floatVectorWidth(options.target);
  int widest = denseWidestTile(options.target);
  int vectors = options.batchOne ? widest / vec : widest / vec / 2;
  return vec * static_cast<int>(std::min<int64_t>(vectors, (units + vec - 1) / vec));
}

int denseWidestTile(const Halide::Target& target) {
  return 8 * floatVectorWidth(target);
}

int denseScheduledUnits(const Layer& layer, const ScheduleOptions& options) {
  int64_t units = layer.outputShape.channels();
  int tile = denseUnitTile(units, options);
  return static_cast<int>((units + tile - 1) / tile * tile);
}

std::vector<int> convWeightBlocks(const Network& net, const ScheduleOptions& options) {
  std::vector<int> blocks(net.layers.size(), 0);
  for (size_t i = 0; i < net.layers.size(); ++i)
    if (net.layers[i].kind == LayerKind::Conv2D)
      blocks[i] = weightBlock(conv2DKnobs(net, i, options));
  return blocks;
}

std::vector<bool> winogradConvs(const Network& net, const ScheduleOptions& options) {
  std::vector<bool> winograd(net.layers.size(), false);
  for (size_t i = 0; i < net.layers.size(); ++i)
    if (net.layers[i].kind == LayerKind::Conv2D)
      winograd[i] = conv2DKnobs(net, i, options).winograd;
  return winograd;
}

namespace {

void scheduleLayer(const Network& net, LoweredNetwork& lowered, size_t i,
                   const ScheduleOptions& options, Func apiOutput) {
  const Layer& layer = net.layers[i];
  LoweredLayer& lowered_layer = lowered.layers[i];
  for (const char* stage : {"scale", "shift"})
    if (lowered_layer.stages.count(stage)) lowered_layer.stages.at(stage).compute_root();
  if (!isStored(net, lowered, i, options)) return;
  switch (layer.kind) {
    case LayerKind::Conv2D:
      scheduleConv2D(layer, lowered_layer, conv2DKnobs(net, i, options), options, apiOutput);
      break;
    case LayerKind::Dense: {
      int producer = layer.inputs[0];
      bool storedVector = producer != kInputIndex && net.shapeOf(producer).isFlat() &&
                          !isInlined(net.layers[producer]);
      scheduleDense(layer, lowered_layer, storedVector, options);
      break;
    }
    case LayerKind::Softmax:
      scheduleSoftmax(lowered_layer);
      break;
    default:
      scheduleChannelwise(layer, lowered_layer, options);
      break;
  }
}

// An example's feature maps stay in cache from layer to layer when they fit
// in about half of a core's L2 together.
constexpr double kFusedExampleBytes = kCoreCacheBytes / 2;

// The last layer of the image stack that may run one example at a time, or
// -1: the last stored image layer, when no later layer reads an earlier one
// and the stack's stored feature maps fit kFusedExampleBytes.
int fusedStackEnd(const Network& net, const LoweredNetwork& lowered,
                  const ScheduleOptions& options) {
  int end = -1;
  for (size_t i = 0; i < net.layers.size(); ++i)
    if (net.layers[i].outputShape.isImage() && isStored(net, lowered, i, options))
      end = static_cast<int>(i);
  if (end < 1) return -1;
  for (size_t j = end + 1; j < net.layers.size(); ++j)
    for (int in : net.layers[j].inputs)
      if (in != kInputIndex && in < end) return -1;
  double bytes = 0;
  for (int i = 0; i <= end; ++i)
    if (isStored(net, lowered, i, options))
      bytes += 4.0 * double(net.layers[i].outputShape.elements());
  return bytes <= kFusedExampleBytes ? end : -1;
}

}  // namespace

void scheduleForward(const Network& net, LoweredNetwork& lowered, const ScheduleOptions& options,
                     Func apiOutput) {
  int stackEnd =
      options.examplesFused && !options.batchOne ? fusedStackEnd(net, lowered, options) : -1;
  ScheduleOptions serial = options;
  serial.serialRows = true;
  size_t last = net.layers.size() - 1;
  // A stack's last layer writes a whole example per task: its output, of
  // at most kFusedExampleBytes, is never one that storesApiOutput stores.
  bool fusedOutput = apiOutput.defined() && stackEnd != static_cast<int>(last) &&
                     convWritesApiOutput(net, options);
  for (size_t i = 0; i < net.layers.size(); ++i)
    scheduleLayer(net, lowered, i, static_cast<int>(i) <= stackEnd ? serial : options,
                  i == last && fusedOutput ? apiOutput : Func());
  if (apiOutput.defined() && !fusedOutput)
    scheduleApiOutput(apiOutput, lowered.layers[last].value.func, net.outputShape(), options);
  if (stackEnd < 0) return;
  // One task per example of the stack's last layer, inside which the
  // stack's other layers (and padded inputs) are computed; parameters stay
  // packed once per call, at the root.
  const auto& v = layerVars();
  Func end = lowered.layers[stackEnd].value.func;
  end.parallel(v.n);
  for (int i = 0; i <= stackEnd; ++i) {
    if (!isStored(net, lowered, i, options)) continue;
    LoweredLayer& layer = lowered.layers[i];
    if (i < stackEnd) layer.value.func.compute_at(end, v.n);
    auto input = layer.stages.find("input");
    if (input == layer.stages.end()) continue;
    Halide::LoopLevel level = input->second.function().schedule().compute_level();
    if (level.lock().is_root()) input->second.compute_at(end, v.n);
  }
}

}  // namespace cnnc
