// THE SCHEDULE of a forward convolution (Conv2DAlgorithm.h): a template
// with named knobs, defaults reasoned from the target, after Halide's
// apps/conv_layer. Depends on Halide only.
//
// The loop nest it makes, for the output (k, x, y, n):
//
//   parallel task in (channel tiles x) row blocks x batch:
//     [padded input rows of the task, when input = Task]
//     for each register tile (tileY rows x tileX columns x channelVectors vectors)
//       tile = bias
//       for ky, kx, ci (ci unrolled by reductionUnroll):
//         channelVectors vector loads of packed weights,
//         tileX*tileY broadcasts of input values,
//         channelVectors*tileX*tileY FMAs into the accumulators
//       store activation(tile)
//
// Registers. The accumulators stay in registers over the whole reduction.
// AVX-512 has 32 zmm registers: W1's 4x5 tile is 20 accumulators + 4
// weight vectors + 1 broadcast = 25, and the inner loop per input channel
// is 4 vmovups of weights, 5 vbroadcastss, 20 vfmadd231ps, no spills
// (tiles up to 28 accumulators fit: 2x7 over 2 rows is 28 + 2 + 1). The
// two load ports feed 9 loads per 20 FMAs (two FMA ports) with room to
// spare. AVX2 and SSE have 16 registers: 12 accumulators at most (3x4, as
// apps/conv_layer), 8 without FMA (a temporary per product).
//
// Weights: packed once at load time in blocks of the tile's channels
// (packTile), so that each tile reads its weights as one contiguous stream
// from L2 (W1: 295 KB per 64-channel tile, reused by every tile of the
// row); this layout was worth 15% on W1 over channels-innermost packing.
//
// Measured (2026-11-22) on the 2-vCPU Intel Xeon (Sapphire Rapids class,
// AVX-512, 48 KiB L1d + 2 MiB L2 per core), 2 threads, AOT-compiled, NHWC
// in and out, weights packed beforehand, medians of 20 alternating calls:
//   W1 (3x3, N=5, 128->128, 100x80 out, bias+ReLU), default knobs 4x5,
//   reduction_unroll=4, 2 rows per task: 37.5-39.2 ms, 301-314 GFLOP/s,
//   88-93% of the FMA-loop peak measured in the same run (330-345 GFLOP/s);
//   PyTorch 1.13 (oneDNN, 2 threads) 42.6-43.7 ms on the same shape in
//   the same runs: 1.12-1.13x. Later runs (peak measured inside the
//   timing process before every turn): 36.98-41.16 ms median, 287-319
//   GFLOP/s, 87-95% of peak, PyTorch 42.1-51.0 ms: 1.06-1.24x.
//   apps/conv_layer's own schedule (4x5, weights
//   channels-innermost over all K) measured 53-54 ms (70%) on the same kind
//   of machine. bench/NOTES.md has the W2 shapes and the variants tried.
#pragma once

#include <string>

#include <Halide.h>

#include "Conv2DAlgorithm.h"

namespace cnnc::conv2d {

// Where the (padded) input the conv reads is computed.
enum class InputAt {
  Inline,  // read the producer directly (no padding: the fastest, nothing stored)
  Root,    // once per call, before the conv, in parallel over rows
  Task,    // per parallel task: the rows that task reads, while they are hot
};

struct Knobs {
  int vectorWidth = 16;     // floats per vector: 16 AVX-512, 8 AVX2, 4 SSE
  int channelVectors = 4;   // vectors of output channels in the register tile
  int tileX = 5;            // output columns in the register tile
  int tileY = 1;            // output rows in the register tile
  int reductionUnroll = 2;  // input channels unrolled in the inner loop
  int rowsPerTask = 1;      // output rows per parallel task (multiple of tileY)
  bool channelTasks = false;  // channel tiles are parallel tasks too (few rows: batch 1)
  bool channelsOuter = true;  // within a task, channel tiles outside column tiles
                              // (a tile's weights stay in L2 over the row)
  // Reduction blocking (0: off, the tile accumulates the whole reduction in
  // registers). With B > 0 each register tile sums B input channels x the
  // kernel taps, then adds into a row buffer; the B*kh*kw*tile weights of a
  // block stay in L1 over all the row's column tiles instead of streaming
  // from L2 for every tile.
  int reductionBlock = 0;
  int blockColumns = 0;     // columns of the row buffer (0: the whole row)
  InputAt input = InputAt::Inline;
  bool parallel = true;     // false: the whole layer on one thread (tiny layers)

  std::string str() const;
};

// Natural vector width in floats for the target.
int naturalFloatVector(const Halide::Target& target);

// Defaults for `shape` at `batch` on `target` (the reasoning is in the .cpp).
Knobs defaultKnobs(const Conv2DShape& shape, int batch, const Halide::Target& target);

// Sets knobs from "name=value" words (vector_width, channel_vectors, tile_x,
// tile_y, reduction_unroll, rows_per_task, channel_tasks, channels_outer,
// reduction_block, block_columns,
// input=inline|root|task, parallel); throws std::invalid_argument on an
// unknown name or a bad value.
void setKnob(Knobs& knobs, const std::string& assignment);

// The channel block of packed weights (WeightLayout::Packed) that suits
// `knobs`: the register tile's channels when they divide K (each tile reads
// one contiguous stream), else all of K rounded up to whole vectors.
int packTile(const Conv2DShape& shape, const Knobs& knobs);

// Applies the schedule to f (f.output becomes compute_root). `batch` is the
// batch size the pipeline is compiled for (0: unknown). Knobs out of range
// for the shape are clamped (tileX to the output width, ...).
void apply(Conv2DFuncs& f, const Conv2DShape& shape, int batch, Knobs knobs);

}  // namespace cnnc::conv2d
