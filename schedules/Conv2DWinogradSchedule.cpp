// The schedule of a conv by Winograd's F(2x2, 3x3) (compiler/layers/
// Conv2DWinograd.cpp). A register tile is channelVectors vectors of output
// channels x winogradTiles blocks of 2x2 outputs: the 16 products of its
// blocks are accumulated over the input channels in registers, one point
// (i, j) at a time, as the direct conv's tiles are (4 weight vectors and 4
// broadcasts per 16 FMAs), then transformed into the tile's outputs. A row
// of blocks' input transforms are stored first, where every channel tile
// reads them.
#include "Conv2DSchedule.h"
#include "NetworkSchedule.h"

namespace cnnc {

using Halide::Func;
using Halide::TailStrategy;
using Halide::Var;

namespace {

// The widest vector of blocks that a row of `blocks` holds (the last one
// shifts inwards), or 1.
int blockVector(int vec, int64_t blocks) {
  while (vec > 1 && vec > blocks) vec /= 2;
  return vec;
}

}  // namespace

int defaultWinogradTiles(const Layer& layer, int channelVectors, int accumulators,
                         bool powerOfTwo) {
  int64_t blocks = layer.outputShape.width() / 2;
  for (int t = std::max(1, accumulators / channelVectors); t > 1; --t)
    if (blocks % t == 0 && (!powerOfTwo || (t & (t - 1)) == 0)) return t;
  return 1;
}

void scheduleWinogradConv2D(const Layer& layer, LoweredLayer& lowered, const Conv2DKnobs& knobs,
                            const ScheduleOptions& options, Func apiOutput) {
  const auto& [c, x, y, n] = layerVars();
  Func out = lowered.value.func, input = lowered.stages.at("input");
  Func rows = lowered.stages.at("winograd_rows"), blocks = lowered.stages.at("winograd_input");
  Func products = lowered.stages.at("winograd_products");
  const Halide::RDom& rc = lowered.reductions.at("winograd_products");
  Var i = products.args()[3], j = products.args()[4], r = rows.args()[2];
  int vec = knobs.vectorWidth, tileC = vec * knobs.channelVectors;
  int width = static_cast<int>(layer.outputShape.width());
  int height = static_cast<int>(layer.outputShape.height());
  Size2 pad = layer.sizeAttr("pad");
  bool padded = pad.h > 0 || pad.w > 0;
  // The network's input is NCHW: its rows are transformed as vectors of
  // blocks, read as even and odd columns, where a channels-innermost input
  // is transformed as vectors of channels.
  bool columnsInnermost = layer.inputs[0] == kInputIndex;
  bool parallel = runsInParallel(options, layer.forwardFlops);

  // Tiles of tileC channels x 2 * winogradTiles columns x 2 rows, which
  // divide the width and height (fitsWinograd, applyKnobs); channels round
  // up to whole tiles (the prepared weights are zero there).
  bool intoApiOutput = apiOutput.defined();
  Func tiles = intoApiOutput ? apiOutput : out;
  Var co("co"), ci("ci"), xo("xo"), xi("xi"), yo("yo"), yi("yi");
  Var blockRows("block_rows"), blockRow("block_row"), task("task");
  int blockRowsPerTask = std::max(1, knobs.taskRows / 2);
  tiles.compute_root()
      .bound(x, 0, width)
      .bound(y, 0, height)
      .split(c, co, ci, tileC, TailStrategy::RoundUp)
      .split(x, xo, xi, 2 * knobs.winogradTiles, TailStrategy::GuardWithIf)
      .split(y, yo, yi, 2, TailStrategy::GuardWithIf)
      .split(yo, blockRows, blockRow, blockRowsPerTask, TailStrategy::GuardWithIf)
      .reorder(intoApiOutput ? xi : ci, intoApiOutput ? ci : xi, yi, xo, co, blockRow, blockRows, n)
      .unroll(yi);
  if (intoApiOutput) {
    tiles.vectorize(xi).unroll(ci);
    scheduleTransposedStores(out, apiOutput, xo, vec);
  } else {
    tiles.vectorize(ci, vec).unroll(ci).unroll(xi);
  }
  Var taskLoop = blockRows;
  if (parallel) {
    tiles.fuse(blockRows, n, task).parallel(task);
    taskLoop = task;
  }

  // The tile's products over the whole reduction, a point at a time.
  // Each point's sums start and end in registers (computed at the point,
  // then copied out, which LLVM forwards): the whole tile's buffer zeroed
  // first was a 16 KB memset per tile, 5% of W1.
  Func points = products.in();
  points.compute_at(tiles, xo)
      .reorder_storage(c, x, i, j, y, n)
      .reorder(c, x, y, i, j, n)
      .vectorize(c, vec)
      .unroll(c)
      .unroll(x);
  products.compute_at(points, i).vectorize(c, vec).unroll(c).unroll(x);
  products.update().reorder(c, x, rc, i, j, y, n).vectorize(c, vec).unroll(c).unroll(x);
  if (knobs.reductionUnroll > 1) products.update().unroll(rc, knobs.reductionUnroll);

  // A row of blocks' input transforms, read by all its channel tiles.
  Var bo("bo"), bi("bi");
  blocks.compute_at(tiles, blockRow);
  if (columnsInnermost) {
    int bv = blockVector(vec, width / 2);
    blocks.reorder_storage(x, c, i, j, y, n)
        .reorder(x, i, j, c, y, n)
        .split(x, bo, bi, bv, TailStrategy::ShiftInwards)
        .vectorize(bi)
        .unroll(i)
        .unroll(j);
    rows.compute_at(blocks, c)
        .reorder(x, i, r, c, y, n)
        .split(x, bo, bi, bv, TailStrategy::ShiftInwards)
        .vectorize(bi)
        .unroll(i)
        .unroll(r);
  } else {
    blocks.reorder_storage(c, x, i, j, y, n)
        .reorder(c, i, j, x, y, n)
        .vectorize(c, vec, TailStrategy::GuardWithIf)
        .unroll(i)
        .unroll(j);
    rows.compute_at(blocks, x)
        .reorder(c, i, r, x, y, n)
        .vectorize(c, vec, TailStrategy::GuardWithIf)
        .unroll(i)
        .unroll(r);
  }
  // A padded input is stored per task (a select per load otherwise), in
  // the layout it comes in.
  if (padded) {
    scheduleStoredInputLayout(input, columnsInnermost, vec);
    input.compute_at(tiles, taskLoop);
  }
}

}  // namespace cnnc
