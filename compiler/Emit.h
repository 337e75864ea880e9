// Emission: builds each entry point's Halide pipeline from the IR, compiles
// them for the target, and writes one static library (the pipelines, the
// Halide runtime once, cnnc's runtime objects) and the network's header.
// Every file is written under a temporary name and renamed into place.
#pragma once

#include <array>
#include <set>
#include <string>
#include <vector>

#include <Halide.h>

#include "Frontend.h"
#include "IR.h"
#include "ScheduleFile.h"

namespace cnnc {

struct EmitOptions {
  std::string libraryPath;  // OUT.a
  std::string headerPath;   // OUT.h unless --header
  std::set<std::string> emit;
  std::string target = "host";
  ScheduleOverrides schedule;  // from --schedule
  bool training = true;        // the train step and optimizer (when the .net has `train`)
  // The forward entry points as one pipeline each, or as one small pipeline
  // per stored layer (LayerPipelines.h); Auto splits big networks.
  enum class Split { Auto, Whole, Layers } split = Split::Auto;
  StageLog log;
};

// Throws EmitError for a problem the user can fix (a bad target string, an
// unwritable path).
void emitLibrary(const Network& net, const EmitOptions& options);

struct EmitError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The --target list: comma-separated Halide target strings (or `host`), all
// of one architecture, bits and OS; throws EmitError naming a bad one.
std::vector<Halide::Target> parseTargets(const std::string& text);

// One call of a forward entry point split into layer functions
// (LayerPipelines.h), as the header's cnnc::LayerCall.
struct LayerCallRow {
  std::string symbol;  // the function
  int layer;
  std::vector<int> sources;  // layers, or kInputIndex
  std::vector<int> params;   // indices into the parameter table
  std::array<int, 3> extents;
};
using LayerCallTable = std::vector<LayerCallRow>;

// One prepared layer (PreparedParams.h), as the header's cnnc::PrepareCall.
struct PrepareCallRow {
  std::string symbol;          // its prepare function
  std::vector<int> params;     // indices into the parameter table: the layer's, a batchnorm's
  std::array<int, 5> extents;  // of the packed weights (halide order); the bias has
                               // extents[0] * extents[4]
};

// The header that declares the network's Model (self-contained C++17);
// `training`: the library has the network's training pipelines; `calls`:
// the batch-N, batch-1 and activations entry points as layer calls, or
// empty when each is one pipeline.
// `prepares`: the prepared layers, whose tensors the forward entry points take.
std::string generateHeader(const Network& net, bool training = true,
                           const std::vector<LayerCallTable>& calls = {},
                           const std::vector<PrepareCallRow>& prepares = {});

// A hash of the network's architecture (its IR without comments): recorded
// in saved weights to tell networks apart.
std::string architectureHash(const Network& net);

// The C symbol prefix of a network's pipelines.
std::string symbolPrefix(const Network& net);

}  // namespace cnnc
