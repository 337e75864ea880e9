// Shared by the front-end tests: analyze text in memory and read diagnostics.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "Frontend.h"

namespace cnnc::test {

struct Analysis {
  std::optional<Network> net;
  std::vector<std::string> errors;  // "line:col: message", in file order
  std::string rendered;
};

inline Analysis analyzeNet(const std::string& text, const std::string& name = "test.net") {
  Diagnostics diags;
  std::optional<SourceFile> source;
  Analysis result;
  result.net = analyzeText(name, text, diags, source);
  result.rendered = diags.render();
  std::vector<Diagnostic> sorted = diags.errors();
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.loc.line, a.loc.col) < std::tie(b.loc.line, b.loc.col);
  });
  for (const auto& d : sorted)
    result.errors.push_back(fmt::format("{}:{}: {}", d.loc.line, d.loc.col, d.message));
  return result;
}

// A network that must analyze cleanly.
inline Network mustAnalyze(const std::string& text) {
  Analysis a = analyzeNet(text);
  if (!a.net) throw std::runtime_error("unexpected errors:\n" + a.rendered);
  return *a.net;
}

}  // namespace cnnc::test
