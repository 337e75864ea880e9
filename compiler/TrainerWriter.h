// `--emit trainer`: the network's command-line trainer, an executable built
// from the generic runtime/TrainerMain.cpp (embedded into cnnc) and the
// network's library and header, with the system C++ compiler.
#pragma once

#include <string>

#include "Emit.h"
#include "Frontend.h"
#include "IR.h"

namespace cnnc {

struct TrainerOptions {
  std::string executablePath;  // OUT: OUT.a without `.a`
  std::string libraryPath;     // OUT.a, already written
  std::string headerPath;      // the network's header, already written
  StageLog log;
};

// Compiles `$CXX -std=c++17 -O2 trainer.cpp OUT.a -lpng -lpthread -ldl -lz`
// ($CXX defaults to `c++`) in a scratch directory beside the executable and
// renames the result into place. Throws EmitError, with the compiler's
// output, when the compiler is missing or fails; no partial file is left.
void emitTrainer(const Network& net, const TrainerOptions& options);

// The trainer's C++ source for a network: the two macros TrainerMain.cpp
// expects, then its text.
std::string trainerSource(const Network& net, const std::string& headerPath);

}  // namespace cnnc
