// Emission: builds each entry point's Halide pipeline from the IR, compiles
// them for the target, and writes one static library (the pipelines, the
// Halide runtime once, cnnc's runtime objects) and the network's header.
// Every file is written under a temporary name and renamed into place.
#pragma once

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

// The header that declares the network's Model (self-contained C++17);
// `training`: the library has the network's training pipelines.
std::string generateHeader(const Network& net, bool training = true);

// A hash of the network's architecture (its IR without comments): recorded
// in saved weights to tell networks apart.
std::string architectureHash(const Network& net);

// The C symbol prefix of a network's pipelines.
std::string symbolPrefix(const Network& net);

}  // namespace cnnc
