// Semantic analysis: gives the AST meaning. Resolves names (auto-naming,
// `from=`), checks every key's type and range, fills defaults, infers shapes
// with PyTorch's formulas, and checks the train settings against the network.
#pragma once

#include <optional>

#include "AST.h"
#include "IR.h"

namespace cnnc {

class Diagnostics;

// The checked network; every problem is reported to `diags` (the returned
// network is only meaningful when `diags` has no errors).
Network analyze(const FileAST& file, Diagnostics& diags);

// The keys of `train`: which apply depends on the optimizer and schedule.
struct KeySpec;
const std::vector<KeySpec>& trainKeys();

// A written value checked against a key's type and range (errors located at
// the value); shared with the other files in .net syntax (schedule files).
std::optional<Value> parseKeyValue(const KeySpec& spec, const ValueNode& node, Diagnostics& diags);

}  // namespace cnnc
