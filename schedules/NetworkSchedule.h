// Default schedules for a lowered network: which layers are materialized and
// how each kind's loops are tiled, vectorized and parallelized. Kept apart
// from the algorithms in compiler/layers/.
#pragma once

#include <array>

#include <Halide.h>

#include "IR.h"
#include "Lowering.h"
#include "ScheduleFile.h"

namespace cnnc {

struct ScheduleOptions {
  Halide::Target target;
  bool batchOne = false;  // the latency entry point: parallelize within an example
  const ScheduleOverrides* overrides = nullptr;  // knobs from a schedule file
  // The batch-N inference pass, whose intermediate values are not outputs:
  // a small network's image layers may run one example at a time, so that
  // an example's feature maps stay in cache from layer to layer.
  bool examplesFused = false;
  // Inside a loop that is already parallel (an example of a fused stack):
  // a layer's own loops stay serial.
  bool serialRows = false;
  // Every layer's output is stored (each is an output of its own: the
  // activations, one pipeline per layer), none computed where it is used.
  bool storesEveryLayer = false;
  // The entry point's result is the last layer in the API's layout (NCHW),
  // which a last conv may store straight from its register tiles.
  bool writesApiOutput = false;
};

// Natural vector width in floats: 16 with AVX-512, 8 with AVX2, 4 otherwise.
int floatVectorWidth(const Halide::Target& target);

// Whether a stage of `flops` work gets parallel tasks: not inside an
// already parallel example, nor for a single small example.
bool runsInParallel(const ScheduleOptions& options, double flops);

// Rows (and examples) as parallel tasks, several rows a task when a row is
// little work: Halide's thread pool takes a lock to hand out each task, so
// thousands of tiny tasks (a LeNet-5 step had 7,000) spent more time there
// than computing. `flops` is one example's work over its `rows` rows. A
// single example whose work is below about 2 MFLOP stays on one thread:
// waking the thread pool costs more. `row` is the loop that stands for the
// rows (the outer loop of rows split into tiles).
void parallelRows(Halide::Func f, const ScheduleOptions& options, double flops, int64_t rows,
                  const Halide::Var& row = layerVars().y);

// `var` as parallel tasks of enough iterations for about 256 kFLOP each.
void parallelTasks(Halide::Stage stage, const Halide::Var& var, double flopsPerIteration);

// True for layers whose output is computed where it is used (elementwise
// layers, flatten, dropout at inference) instead of stored.
bool isInlined(const Layer& layer);

// Whether layer i has a stored output of its own: not folded into the conv
// before it, nor computed where it is used (unless options say every layer is).
bool isStored(const Network& net, const LoweredNetwork& lowered, size_t i,
              const ScheduleOptions& options);

// The region of layer i's output that its schedule computes, (c, x, y)
// extents from 0: its shape, or more where the schedule rounds up to whole
// register tiles. A buffer the layer is computed into must cover it.
std::array<int, 3> scheduledExtents(const Network& net, size_t i, const ScheduleOptions& options);

// A dense layer's register tile of units (a multiple of the vector width),
// and the units its schedule computes sums for: rounded up to whole tiles,
// which prepared weights must cover. Every tile divides the widest, which a
// layer of more units than that uses at batch 1.
int denseUnitTile(int64_t units, const ScheduleOptions& options);
int denseWidestTile(const Halide::Target& target);
int denseScheduledUnits(const Layer& layer, const ScheduleOptions& options);

// Per layer, the ForwardContext::weightBlock its schedule packs a conv's
// weights in (0 for other layers): for lowerNetwork.
std::vector<int> convWeightBlocks(const Network& net, const ScheduleOptions& options);
// Per layer, whether it is a conv computed by Winograd's F(2x2, 3x3) where
// its parameters come prepared (Conv2DKnobs::winograd): PreparedLayer::winograd.
std::vector<bool> winogradConvs(const Network& net, const ScheduleOptions& options);

// With apiOutput (LoweredNetwork::apiOutput of the last layer), schedules
// that too, as scheduleApiOutput or inside the last conv's tiles.
void scheduleForward(const Network& net, LoweredNetwork& lowered, const ScheduleOptions& options,
                     Halide::Func apiOutput = Halide::Func());

// A layer's output in the API's layout (LoweredNetwork::apiOutput): an image
// is transposed from channels-innermost to NCHW in 16x16 tiles.
// `producer` is the layer's own function, which `output` reads.
void scheduleApiOutput(Halide::Func output, Halide::Func producer, const Shape& shape,
                       const ScheduleOptions& options);

}  // namespace cnnc
