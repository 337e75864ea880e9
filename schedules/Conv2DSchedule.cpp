#include "Conv2DSchedule.h"

#include <algorithm>
#include <vector>

#include "LayerKinds.h"
#include "NetworkSchedule.h"
#include "RegisterTile.h"

namespace cnnc {

using Halide::Func;
using Halide::RVar;
using Halide::TailStrategy;
using Halide::Var;

namespace {

// Column vectors read the input's columns contiguously (stride 1), and the
// last vector of a row either reads past the width into padding, which
// reads as zeros at any column, or shifts inwards (a row of a vector or more).
bool columnVectorsFit(const Layer& layer, int vec) {
  return layer.sizeAttr("stride").w == 1 &&
         (layer.sizeAttr("pad").w > 0 || layer.outputShape.width() >= vec);
}

// Column vectors: every filter x as many rows as the accumulators allow,
// a divisor of the height when one is at least half that.
void setColumnTile(Conv2DKnobs& knobs, const Layer& layer, int accumulators) {
  int64_t filters = layer.outputShape.channels(), height = layer.outputShape.height();
  int rows =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(accumulators / filters, height)));
  knobs.tileY = rows;
  for (int r = rows; r >= std::max(1, rows / 2); --r)
    if (height % r == 0) {
      knobs.tileY = r;
      break;
    }
  knobs.materializeInput = true;
}

}  // namespace

int64_t scheduledChannels(const Layer& layer, const Conv2DKnobs& knobs) {
  int64_t filters = layer.outputShape.channels();
  if (knobs.vectorizeColumns) return filters;
  int64_t tile = knobs.vectorWidth * knobs.channelVectors;
  return (filters + tile - 1) / tile * tile;
}

int weightBlock(const Conv2DKnobs& knobs) {
  return knobs.vectorizeColumns ? 0 : knobs.vectorWidth * knobs.channelVectors;
}

int64_t scheduledWidth(const Layer& layer, const Conv2DKnobs& knobs) {
  int64_t width = layer.outputShape.width(), vec = knobs.vectorWidth;
  bool padded = layer.sizeAttr("pad").w > 0;
  return knobs.vectorizeColumns && padded ? (width + vec - 1) / vec * vec : width;
}

Conv2DKnobs defaultConv2DKnobs(const Layer& layer, const Shape& input, const Halide::Target& target,
                               bool storesNchw, bool readsNchw) {
  Conv2DKnobs knobs;
  int natural = floatVectorWidth(target);
  bool avx512 = natural == 16;
  bool fma = target.has_feature(Halide::Target::FMA) || avx512;
  int accumulators = avx512 ? 20 : fma ? 12 : 8;  // column vectors' tile (setColumnTile)
  knobs.vectorWidth = natural;
  int64_t filters = layer.outputShape.channels();
  // Narrow layers: the smallest vector that holds them, no wider than natural.
  while (knobs.vectorWidth > 4 && knobs.vectorWidth / 2 >= filters) knobs.vectorWidth /= 2;
  // The register tile by chooseRegisterTile's cost model: on W2a at batch 8
  // its 4x3 over 2 rows (57 of 56 columns) measured 8.0 ms against 8.8 for
  // the 4x5 of 20 accumulators before (60 columns).
  RegisterTile tile = chooseRegisterTile(
      static_cast<int>(layer.outputShape.width()), static_cast<int>(layer.outputShape.height()),
      static_cast<int>(filters), knobs.vectorWidth, avx512, fma, storesNchw);
  knobs.channelVectors = tile.channelVectors;
  knobs.tileX = tile.tileX;
  knobs.tileY = tile.tileY;
  int64_t inputChannels = input.channels() / layer.intAttr("groups");
  knobs.reductionUnroll = inputChannels % 2 == 0 ? 2 : 1;
  Size2 pad = layer.sizeAttr("pad");
  // The inner loop broadcasts single input values, so it reads any layout
  // at full speed: padding (a select per load) is worth a pass of its own,
  // and so is the network's NCHW input where each of its values feeds many
  // products: a tile then reads a cache line of each of hundreds of planes
  // (W1, 1152 products a value: 43.2 -> 40.4 ms copied channels-innermost
  // first; W2b's 64 a value: 0.59 -> 0.98 ms, the copy costs more). An
  // inlined producer is recomputed per load, which for elementwise layers
  // costs less than storing them.
  Size2 kernel = layer.sizeAttr("kernel"), stride = layer.sizeAttr("stride");
  int64_t productsPerValue = filters / layer.intAttr("groups") * kernel.h * kernel.w /
                             std::max<int64_t>(1, stride.h * stride.w);
  knobs.materializeInput = pad.h > 0 || pad.w > 0 || (readsNchw && productsPerValue >= 512);
  // A 1x1 conv reading the NCHW input in place takes a cache line from each
  // of hundreds of planes per tile: more streams than the hardware
  // prefetchers follow. With each task's rows copied first as runs of each
  // plane, in NCHW order, W2b at batch 8 took 4.0 ms instead of 6.7 (at
  // batch 1 0.51 against 0.56). Where the copy is padded (W2d, 3x3 at stride 2) it
  // was 2.7x slower than the transposing copy.
  if (readsNchw && !knobs.materializeInput && kernel.h == 1 && kernel.w == 1 && stride.h == 1 &&
      stride.w == 1) {
    knobs.materializeInput = true;
    knobs.inputColumnsInnermost = true;
  }
  // Few filters: a vector of channels would be mostly empty lanes (6
  // filters use 6 of 16); vectors of 16 columns fill them. A reduction of
  // 16 values or more pays for the input's transposed copy and the output's
  // scattered stores (LeNet-5's conv1, 25 values: 1.6x faster).
  int64_t reduction = inputChannels * layer.sizeAttr("kernel").h * layer.sizeAttr("kernel").w;
  if (filters * 2 <= natural && reduction >= 16 && columnVectorsFit(layer, natural)) {
    knobs.vectorizeColumns = true;
    knobs.vectorWidth = natural;
    setColumnTile(knobs, layer, accumulators);
  }
  // Winograd where its GEMMs are long and full: at least 64 input and
  // output channels, and a tile of at least half the accumulators (W1
  // 37.8 -> 27.9 ms, W2a at batch 8 7.9 -> 6.1, ResNet-18 at batch 1 -5%).
  if (fitsWinograd(layer) && !knobs.vectorizeColumns) {
    int most = avx512 ? 16 : fma ? 8 : 4;
    knobs.winogradTiles = defaultWinogradTiles(layer, knobs.channelVectors, most, storesNchw);
    knobs.winograd = inputChannels >= 64 && filters >= 64 &&
                     knobs.channelVectors * knobs.winogradTiles * 2 >= most;
  }
  return knobs;
}

int defaultTaskRows(const Layer& layer, const Conv2DKnobs& knobs, int64_t examplesPerCall) {
  // A stored copy of the whole input goes to memory and back when it
  // outgrows the cache; each task's rows stay in L2, at the cost of the
  // kernel's halo rows once a task (W2a batch 8 7.2 -> 6.2 ms, W2c batch 1
  // 1.03 -> 0.88). All of them at once rather than a row before each
  // output row (a sliding window): the NCHW input is then read in runs of
  // each plane, which the hardware prefetches (W1 42.8 -> 41.4). Fewer than
  // 8 tasks leave a thread idle at the end; 16 rows beat 8 (less halo,
  // longer runs: W1 39.3 -> 38.4, W2c batch 8 7.0 -> 6.8).
  // Rows stored columns innermost: the tile reads a line of every plane of
  // its columns, so fewer rows keep a task's copy nearer the core (W2b at
  // batch 8: 4 rows 4.07 ms, 8 3.99, 16 4.73).
  if (!knobs.materializeInput || knobs.vectorizeColumns) return 0;
  constexpr int kTasks = 8;
  int64_t height = layer.outputShape.height();
  std::vector<int> candidates = {16, 8};
  if (knobs.inputColumnsInnermost) candidates = {4};
  for (int rows : candidates)
    if ((height + rows - 1) / rows * examplesPerCall >= kTasks) return rows;
  return 0;
}

void applyKnobs(Conv2DKnobs& knobs, const std::vector<Attribute>& values, const Layer& layer) {
  for (const Attribute& a : values) {
    if (a.key == "vector_width") knobs.vectorWidth = static_cast<int>(std::get<int64_t>(a.value));
    if (a.key == "channel_vectors")
      knobs.channelVectors = static_cast<int>(std::get<int64_t>(a.value));
    if (a.key == "tile_x") knobs.tileX = static_cast<int>(std::get<int64_t>(a.value));
    if (a.key == "reduction_unroll")
      knobs.reductionUnroll = static_cast<int>(std::get<int64_t>(a.value));
    if (a.key == "materialize_input") knobs.materializeInput = std::get<bool>(a.value);
    if (a.key == "vectorize_columns") knobs.vectorizeColumns = std::get<bool>(a.value);
    if (a.key == "tile_y") knobs.tileY = static_cast<int>(std::get<int64_t>(a.value));
    if (a.key == "task_rows") knobs.taskRows = static_cast<int>(std::get<int64_t>(a.value));
    if (a.key == "input_columns_innermost") knobs.inputColumnsInnermost = std::get<bool>(a.value);
    if (a.key == "winograd") knobs.winograd = std::get<bool>(a.value);
    if (a.key == "winograd_tiles")
      knobs.winogradTiles = static_cast<int>(std::get<int64_t>(a.value));
  }
  // Whole tiles of 2x2 blocks along a row: the most that divide it.
  knobs.winograd = knobs.winograd && fitsWinograd(layer);
  if (knobs.winograd) {
    int64_t blocks = layer.outputShape.width() / 2;
    knobs.winogradTiles = static_cast<int>(std::clamp<int64_t>(knobs.winogradTiles, 1, blocks));
    while (blocks % knobs.winogradTiles != 0) --knobs.winogradTiles;
  }
  knobs.vectorizeColumns = knobs.vectorizeColumns && columnVectorsFit(layer, knobs.vectorWidth);
  knobs.tileY = static_cast<int>(std::min<int64_t>(knobs.tileY, layer.outputShape.height()));
  if (knobs.vectorizeColumns) knobs.materializeInput = true;
  knobs.tileX = static_cast<int>(std::min<int64_t>(knobs.tileX, layer.outputShape.width()));
  // Padding is applied by the materialized input stage.
  Size2 pad = layer.sizeAttr("pad");
  knobs.materializeInput = knobs.materializeInput || pad.h > 0 || pad.w > 0;
}

namespace {

// The column-vector tile: every filter x tileY rows x one vector of
// columns, accumulated over the whole reduction in registers. The input is
// stored with its columns innermost (vector loads at each kernel column).
// A padded layer's columns round up to whole vectors (the padding reads as
// zeros past the width); otherwise the last vector shifts inwards.
void scheduleColumnVectors(const Layer& layer, LoweredLayer& lowered, const Conv2DKnobs& knobs,
                           const ScheduleOptions& options) {
  const auto& [c, x, y, n] = layerVars();
  Func out = lowered.value.func, conv = lowered.stages.at("conv"),
       input = lowered.stages.at("input");
  int vec = knobs.vectorWidth, filters = static_cast<int>(layer.outputShape.channels());
  input.compute_root()
      .reorder_storage(x, c, y, n)
      .reorder(x, c, y, n)
      .vectorize(x, vec, TailStrategy::GuardWithIf);
  parallelRows(input, options, layer.forwardFlops, layer.outputShape.height());
  Var xo("xo"), xi("xi"), yo("yo"), yi("yi");
  out.compute_root()
      .bound(c, 0, filters)
      .bound(x, 0, static_cast<int>(scheduledWidth(layer, knobs)))
      .split(x, xo, xi, vec, TailStrategy::ShiftInwards)
      .split(y, yo, yi, knobs.tileY, TailStrategy::ShiftInwards)
      .reorder(xi, c, yi, xo, yo, n)
      .vectorize(xi)
      .unroll(c)
      .unroll(yi);
  if (runsInParallel(options, layer.forwardFlops)) {
    Var task("task");
    out.fuse(yo, n, task);
    parallelTasks(out, task, layer.forwardFlops * knobs.tileY / double(layer.outputShape.height()));
  }
  const Halide::RDom& r = lowered.reductions.at("conv");
  conv.compute_at(out, xo).reorder_storage(x, c, y, n).vectorize(x).unroll(c).unroll(y);
  conv.update().reorder(x, c, y, r.x, r.y, r.z, n).vectorize(x).unroll(c).unroll(y);
}

}  // namespace

// Packed in blocks of the register tile's channels (convWeightBlocks), so
// that a tile's weights are one sequential stream (bench/NOTES.md: 16% on
// W1). A transpose of PyTorch's [K][C][kh][kw] in tiles: each vector of
// filters gathers from `vec` rows, and a tile's 16 input channels x kernel
// taps of those rows stay in L1 while all of them are gathered (filters
// innermost, every element missed the cache: ResNet-18's deep 3x3 layers
// spent longer packing than convolving at batch 1), blocks of input
// channels in parallel.
void schedulePackedWeights(Func packed, const Layer& layer, int vec, bool parallel,
                           TailStrategy blockTail) {
  std::vector<Var> args = packed.args();  // (kv, ci, kx, ky, kb)
  Var kvo("kvo"), kvi("kvi"), cio("cio"), cii("cii");
  packed.compute_root()
      .split(args[0], kvo, kvi, vec, blockTail)
      .split(args[1], cio, cii, 16, TailStrategy::GuardWithIf)
      .reorder(kvi, args[2], args[3], cii, kvo, cio, args[4])
      .vectorize(kvi);
  // A gather per element costs far more than a flop: in parallel from 64K
  // elements even at batch 1 (W2d's 147K: 10% of its time, serially).
  int64_t elements = layer.params[0].elements();
  if (elements >= (1 << 16) && parallel) packed.parallel(cio);
}

void scheduleStoredInputLayout(Func input, bool columnsInnermost, int vec) {
  const auto& [c, x, y, n] = layerVars();
  if (columnsInnermost)
    input.reorder_storage(x, y, c, n)
        .reorder(x, y, c, n)
        .vectorize(x, vec, TailStrategy::GuardWithIf);
  else
    input.vectorize(c, std::min(vec, 8), TailStrategy::GuardWithIf);
}

void scheduleTransposedStores(Func out, Func apiOutput, const Var& tile, int vec) {
  const auto& [c, x, y, n] = layerVars();
  Func loads = out.in(apiOutput), transposed = loads.in(apiOutput);
  loads.compute_at(apiOutput, tile).vectorize(c, vec).unroll(c).unroll(x).unroll(y);
  transposed.reorder_storage(x, c, y, n)
      .compute_at(apiOutput, tile)
      .vectorize(x)
      .unroll(c)
      .unroll(y);
}

void scheduleConv2D(const Layer& layer, LoweredLayer& lowered, const Conv2DKnobs& knobs,
                    const ScheduleOptions& options, Func apiOutput) {
  const auto& [c, x, y, n] = layerVars();
  Func out = lowered.value.func;
  Func conv = lowered.stages.at("conv");
  Func input = lowered.stages.at("input");
  int vec = knobs.vectorWidth, tileC = vec * knobs.channelVectors;

  // Parameters packed per call, unless they come prepared.
  if (lowered.stages.count("packed_weights")) {
    schedulePackedWeights(lowered.stages.at("packed_weights"), layer, vec, !options.serialRows);
    lowered.stages.at("bias").compute_root().vectorize(c, vec, TailStrategy::RoundUp);
  }
  for (const char* stage : {"bn_scale", "bn_shift"})
    if (lowered.stages.count(stage)) lowered.stages.at(stage).compute_root();

  if (lowered.stages.count("winograd_products")) {
    scheduleWinogradConv2D(layer, lowered, knobs, options, apiOutput);
    return;
  }
  if (knobs.vectorizeColumns) {
    scheduleColumnVectors(layer, lowered, knobs, options);
    return;
  }
  // The stored input: each task's rows, or the whole of it at the root.
  bool inputPerTask =
      knobs.materializeInput && knobs.taskRows > 0 && runsInParallel(options, layer.forwardFlops);
  if (knobs.materializeInput) {
    scheduleStoredInputLayout(input, knobs.inputColumnsInnermost, vec);
    if (!inputPerTask) {
      input.compute_root();
      parallelRows(input, options, layer.forwardFlops, layer.outputShape.height());
    }
  }

  // The output in register tiles: tileC channels x tileX columns x tileY
  // rows. Channels round up to whole tiles (the packed weights are zero
  // there); the last column and row tiles shift inwards. Into the API's
  // NCHW output (apiOutput, where a separate transpose pass would re-read
  // the output from memory), each tile is transposed as it is stored.
  bool intoApiOutput = apiOutput.defined();
  Func tiles = intoApiOutput ? apiOutput : out;
  Var co("co"), ci("ci"), xo("xo"), xi("xi"), yo("yo"), yi("yi"), task("task");
  // The whole width is computed even where a consumer reads less (a pool
  // that drops the last column): a narrower region than tileX would shift
  // the last tile to negative columns.
  tiles.compute_root()
      .bound(x, 0, static_cast<int>(layer.outputShape.width()))
      .split(c, co, ci, tileC, TailStrategy::RoundUp)
      .split(x, xo, xi, knobs.tileX, TailStrategy::ShiftInwards);
  Var rows = y;
  std::vector<Halide::VarOrRVar> order = {intoApiOutput ? xi : ci, intoApiOutput ? ci : xi};
  if (knobs.tileY > 1) {
    // Every row, as every column: a region of fewer rows than the tile
    // would shift it to negative rows.
    tiles.bound(y, 0, static_cast<int>(layer.outputShape.height()))
        .split(y, yo, yi, knobs.tileY, TailStrategy::ShiftInwards)
        .unroll(yi);
    rows = yo;
    order.push_back(yi);
  }
  Var taskRows("task_rows"), taskRow("task_row");
  if (inputPerTask) {
    int tileRowsPerTask = std::max(1, knobs.taskRows / knobs.tileY);
    tiles.split(rows, taskRows, taskRow, tileRowsPerTask, TailStrategy::GuardWithIf);
    for (const Var& outer : {xo, co, taskRow, taskRows, n}) order.push_back(outer);
  } else {
    for (const Var& outer : {xo, co, rows, n}) order.push_back(outer);
  }
  tiles.reorder(order);
  if (intoApiOutput) {
    // The tile's channel vectors (act(conv)), then their transpose, both
    // in registers (block_transpose's idiom): a vector of columns a channel.
    tiles.vectorize(xi).unroll(ci);
    scheduleTransposedStores(out, apiOutput, xo, vec);
  } else {
    tiles.vectorize(ci, vec).unroll(ci).unroll(xi);
  }
  // Rows of tiles are the parallel tasks; a row's channel tiles share its
  // input rows in cache.
  int64_t tileRows = (layer.outputShape.height() + knobs.tileY - 1) / knobs.tileY;
  if (inputPerTask) {
    // A task: taskRows rows of one example, every channel tile of them.
    tiles.fuse(taskRows, n, task).parallel(task);
    input.compute_at(tiles, task);
  } else if (options.batchOne && layer.forwardFlops >= 2e6) {
    // One example has few rows deep in a network (7 or 14): channel tiles
    // too are tasks, so that both threads get balanced work.
    tiles.fuse(co, rows, task).parallel(task);
  } else {
    parallelRows(tiles, options, layer.forwardFlops, tileRows, rows);
  }

  // Accumulate the tile over the whole reduction in registers.
  const Halide::RDom& r = lowered.reductions.at("conv");
  RVar rc = r.x, rkx = r.y, rky = r.z;
  conv.compute_at(tiles, xo).vectorize(c, vec).unroll(c).unroll(x).unroll(y);
  conv.update().reorder(c, x, y, rc, rkx, rky, n).vectorize(c, vec).unroll(c).unroll(x).unroll(y);
  if (knobs.reductionUnroll > 1) conv.update().unroll(rc, knobs.reductionUnroll);
  // The packed weights are read straight from memory: a staging copy per
  // input channel (apps/conv_layer's filter.in()) measured 10% slower here.
}

}  // namespace cnnc
