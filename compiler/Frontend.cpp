#include "Frontend.h"

#include <fmt/format.h>

#include "Lexer.h"
#include "Parser.h"
#include "Sema.h"

namespace cnnc {

std::optional<Network> analyzeSource(const SourceFile& source, Diagnostics& diags,
                                     const StageLog& log) {
  auto note = [&](const char* stage, const std::string& detail) {
    if (log) log(stage, detail);
  };
  try {
    std::vector<Token> tokens = lex(source, diags);
    note("lex", fmt::format("{} tokens", tokens.size()));
    FileAST ast = parse(tokens, diags);
    note("parse", fmt::format("{} statements", ast.statements.size()));
    // Sema runs even after syntax errors: its checks of the statements that
    // did parse are independent errors worth reporting together.
    Network net = analyze(ast, diags);
    note("sema", fmt::format("{} layers, {} parameters", net.layers.size(), net.paramCount()));
    if (diags.hasErrors()) return std::nullopt;
    return net;
  } catch (const StageFailed&) {
    return std::nullopt;
  }
}

std::optional<Network> analyzeFile(const std::string& path, Diagnostics& diags,
                                   std::optional<SourceFile>& source, const StageLog& log) {
  try {
    source.emplace(SourceFile::read(path, diags));
  } catch (const StageFailed&) {
    return std::nullopt;
  }
  diags.setSource(&*source);
  if (log) log("read", fmt::format("{} ({} bytes)", path, source->text().size()));
  return analyzeSource(*source, diags, log);
}

std::optional<Network> analyzeText(const std::string& name, const std::string& text,
                                   Diagnostics& diags, std::optional<SourceFile>& source) {
  try {
    source.emplace(SourceFile::fromText(name, text, diags));
  } catch (const StageFailed&) {
    return std::nullopt;
  }
  diags.setSource(&*source);
  return analyzeSource(*source, diags);
}

}  // namespace cnnc
