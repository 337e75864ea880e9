// The AST: statements as written, before any meaning is given to them. Sema
// turns it into the IR.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "Lexer.h"

namespace cnnc {

// A value as written: one atom (`6`, `5x5`, `relu`) or a comma list (`a,b`).
struct ValueNode {
  std::vector<Token> atoms;
  Location loc;  // spans the whole value

  bool isList() const { return atoms.size() > 1; }
};

struct KeyValue {
  Token key;
  ValueNode value;
};

// Unknown: a word that is neither a statement nor a layer kind (reported by
// the parser; sema keeps only its name).
enum class StatementKind { Network, Input, Layer, Train, Unknown };

struct Statement {
  StatementKind kind;
  Token keyword;                  // `network`, `input`, `train`, or the layer kind
  std::optional<Token> name;      // `NAME:` of a layer
  std::optional<Token> argument;  // the network's name or the input shape
  std::vector<KeyValue> keys;
};

struct FileAST {
  std::vector<Statement> statements;
  Location end;  // the end of the file, for "missing ..." diagnostics
};

}  // namespace cnnc
