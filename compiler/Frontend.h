// The front end as one call: source text -> tokens -> AST -> IR. Each stage
// is logged when a log is given (`-v`), and stops the pipeline when it
// reported errors.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "Diagnostics.h"
#include "IR.h"
#include "SourceFile.h"

namespace cnnc {

using StageLog = std::function<void(const std::string& stage, const std::string& detail)>;

// The IR of `source`, or nullopt when `diags` received errors.
std::optional<Network> analyzeSource(const SourceFile& source, Diagnostics& diags,
                                     const StageLog& log = nullptr);

// Reads, validates and analyzes a .net file. On failure returns nullopt with
// the reasons in `diags`, whose source is set to the file for rendering.
std::optional<Network> analyzeFile(const std::string& path, Diagnostics& diags,
                                   std::optional<SourceFile>& source,
                                   const StageLog& log = nullptr);

// The same from text in memory (tests, fuzzing, the IR round trip).
std::optional<Network> analyzeText(const std::string& name, const std::string& text,
                                   Diagnostics& diags, std::optional<SourceFile>& source);

}  // namespace cnnc
