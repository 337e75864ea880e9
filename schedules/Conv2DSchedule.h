// The convolution schedule template: a register tile of output channels x
// output columns accumulated over the whole reduction, after Halide's
// apps/conv_layer. The knobs are named so that a tuner (and --schedule files)
// can set them per layer.
#pragma once

#include <string>

#include <Halide.h>

#include "IR.h"
#include "Lowering.h"

namespace cnnc {

struct Conv2DKnobs {
  int vectorWidth = 16;           // floats per vector: output channels (or columns) a vector
  int channelVectors = 4;         // vectors of output channels in the register tile
  int tileX = 5;                  // output columns in the register tile
  int reductionUnroll = 2;        // input channels unrolled in the inner loop
  bool materializeInput = false;  // compute the (padded) input once, before the conv
  // Vectors along output columns instead of channels, over a stored input
  // with its columns innermost: for few filters, whose channel vectors
  // would be mostly empty lanes. The tile is every filter x tileY rows.
  bool vectorizeColumns = false;
  int tileY = 1;  // output rows in the register tile
  // Output rows a parallel task computes over the input rows that it
  // stores first, in cache; 0: the whole input is stored before the conv.
  int taskRows = 0;
  // The stored input keeps the network's NCHW order (columns innermost)
  // instead of channels innermost: a copy of each plane's rows in runs,
  // which the hardware prefetches, for a conv that reads each value too
  // few times to pay for transposing it (a 1x1 conv over the input).
  bool inputColumnsInnermost = false;
  // Winograd's F(2x2, 3x3) instead of the direct sum, for a 3x3 stride-1
  // conv that fitsWinograd: 16 products per input channel for 4 outputs
  // instead of 36. A tile is channelVectors x winogradTiles 2x2 blocks.
  bool winograd = false;
  int winogradTiles = 4;
};

// The output channels the schedule computes: whole register tiles of them.
int64_t scheduledChannels(const Layer& layer, const Conv2DKnobs& knobs);
// The output channels per block of its packed weights (0: one block): the
// register tile's, whose weights then stream contiguously.
int weightBlock(const Conv2DKnobs& knobs);
// The output columns it computes: whole column vectors of a padded layer.
int64_t scheduledWidth(const Layer& layer, const Conv2DKnobs& knobs);

// Defaults reasoned from the target: the register tile by
// chooseRegisterTile (AVX-512's 32 vector registers hold up to 28
// accumulators; AVX2's 16, 12; SSE without FMA, 8). Few output channels get
// narrower vectors, or column vectors and every filter a tile. `storesNchw`:
// the tile is transposed into the API's NCHW output as it is stored;
// `readsNchw`: the input is the network's, NCHW.
Conv2DKnobs defaultConv2DKnobs(const Layer& layer, const Shape& input, const Halide::Target& target,
                               bool storesNchw = false, bool readsNchw = false);

// The default taskRows: 16 rows a task, or 8, where that leaves 8 tasks or
// more (batch 1: the tasks are rows of one example); 4 for an input stored
// with its columns innermost; else 0.
int defaultTaskRows(const Layer& layer, const Conv2DKnobs& knobs, int64_t examplesPerCall);

// Sets the knobs a schedule file gives (tile_x at most the output width).
void applyKnobs(Conv2DKnobs& knobs, const std::vector<Attribute>& values, const Layer& layer);

// A conv's packed weights (the "packed_weights" stage, or a prepared
// tensor's), at the root: `parallel` unless already inside parallel work;
// `blockTail` for the block of output channels that vectors split.
void schedulePackedWeights(Halide::Func packed, const Layer& layer, int vec, bool parallel,
                           Halide::TailStrategy blockTail = Halide::TailStrategy::RoundUp);

// The blocks of 2x2 outputs along a row of a Winograd tile: the most that
// divide the row's blocks with channelVectors x them at most `accumulators`
// (a power of two for tiles transposed into the NCHW output).
int defaultWinogradTiles(const Layer& layer, int channelVectors, int accumulators, bool powerOfTwo);

struct ScheduleOptions;
// With apiOutput (the network's NCHW output, reading this layer), the
// register tiles are that output's, each transposed as it is stored.
void scheduleConv2D(const Layer& layer, LoweredLayer& lowered, const Conv2DKnobs& knobs,
                    const ScheduleOptions& options, Halide::Func apiOutput = Halide::Func());
// The same for a conv lowered by conv2dWinogradForward
// (Conv2DWinogradSchedule.cpp).
void scheduleWinogradConv2D(const Layer& layer, LoweredLayer& lowered, const Conv2DKnobs& knobs,
                            const ScheduleOptions& options, Halide::Func apiOutput);
// A conv's stored input: vectors along its rows, stored in NCHW order
// (`columnsInnermost`), or vectors of at most 8 channels innermost.
void scheduleStoredInputLayout(Halide::Func input, bool columnsInnermost, int vec);
// The register tile of `out` at loop `tile` of apiOutput (its NCHW
// output), loaded as channel vectors and stored transposed in registers (a
// vector of columns a channel: Halide's block_transpose idiom).
void scheduleTransposedStores(Halide::Func out, Halide::Func apiOutput, const Halide::Var& tile,
                              int vec);

}  // namespace cnnc
