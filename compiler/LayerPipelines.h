// A big network's entry points as one small pipeline per stored layer.
//
// Why: Halide's lowering time grows faster than linearly with the size of a
// pipeline, and ResNet-50's forward pass as one pipeline of some 170 layers
// took 21 minutes to compile. Split, each stored layer (a conv with its
// folded batchnorm and activation, a pool, an add with the layers computed
// inline before it, ...) is a pipeline of its own; layers that compute the
// same thing on the same shapes (ResNet's repeated blocks) share one
// compiled function; and the runtime calls them in order (the header's
// cnnc::LayerProgram tables, runtime/Model.h), keeping the feature maps
// between them. An entry point of calls as one Halide pipeline of extern
// stages was tried: it compiled as slowly as the network it replaced.
#pragma once

#include <array>
#include <string>
#include <vector>

#include <Halide.h>

#include "IR.h"
#include "Lowering.h"
#include "ScheduleFile.h"

namespace cnnc {

// The entry points that can be split.
enum class ForwardEntry {
  BatchN,       // _forward
  BatchOne,     // _forward_one, scheduled for latency
  Activations,  // _activations: every layer's output
};

// How an entry point's layers are divided into compiled functions.
struct LayerSplit {
  ForwardEntry entry;
  std::vector<bool> separate;  // per layer: computed by a function of its own
  // Per separate layer: the separate layers (or kInputIndex) its function
  // reads, through layers computed inline, in argument order; and the layers
  // whose parameters it takes, in order.
  std::vector<std::vector<int>> sources, paramLayers;
  std::vector<int> functionOf;  // per separate layer: its index in `functions`
  struct Function {
    std::string symbol;  // C name
    int layer;           // the first layer it computes (its pipeline is built from it)
    int uses;            // how many layers it computes
  };
  std::vector<Function> functions;
};

// The most sources and parameter tensors one layer call can take
// (runtime/Model.h's kMaxCallSources and kMaxCallParams).
constexpr int kMaxCallArguments = 16;
bool fitsLayerCalls(const Network& net, const LayerSplit& split);

// Whether `net`'s forward entry points are split by default: when they
// would have more stored layers than compile quickly as one pipeline.
bool splitByDefault(const Network& net);

LayerSplit planLayerSplit(const Network& net, ForwardEntry entry,
                          const ScheduleOverrides& overrides, const std::string& entrySymbol);

// One of split.functions, for `target` of the library's `targets`:
// (sources..., parameters...) -> the layer's output in the internal layout
// (c, x, y, n), over callExtents. The parameters are callParameters' of
// split.paramLayers, with `prepared` convs (PreparedParams.h; empty for
// the activations, which fold nothing).
Halide::Module layerFunctionModule(const Network& net, const LayerSplit& split, int function,
                                   const ScheduleOverrides& overrides,
                                   const std::vector<Halide::Target>& targets,
                                   const std::vector<PreparedLayer>& prepared,
                                   const Halide::Target& target, const std::string& name);

// The (c, x, y) extents a separate layer's function writes, for every
// target of the library (the runtime's buffers cover the largest).
std::array<int, 3> callExtents(const Network& net, const LayerSplit& split, int layer,
                               const ScheduleOverrides& overrides,
                               const std::vector<Halide::Target>& targets);

}  // namespace cnnc
