// The lexer: .net text to tokens. Comments and `\` line joins disappear here;
// every token keeps its location and byte offset (lists and dimensions must
// not contain spaces, which the parser checks through the offsets).
#pragma once

#include <string>
#include <vector>

#include "Location.h"

namespace cnnc {

class Diagnostics;
class SourceFile;

enum class TokenKind {
  Identifier,  // conv1, relu, true
  Number,      // 64, -1, 0.05, 1e-5
  Dimensions,  // 5x5, 1x28x28
  Invalid,     // a malformed number, already reported
  Colon,
  Equals,
  Comma,
  EndOfStatement,  // a line end that is not joined to the next line
  EndOfFile,
};

const char* tokenKindName(TokenKind kind);

struct Token {
  TokenKind kind;
  std::string text;
  Location loc;
  size_t offset = 0;  // byte offset of the first character in the file

  size_t end() const { return offset + text.size(); }
  // True when `next` follows this token with no space between them.
  bool touches(const Token& next) const { return end() == next.offset; }
};

// Splits the whole file into tokens. Malformed characters and numbers are
// reported to `diags` and skipped; the result always ends with EndOfFile.
std::vector<Token> lex(const SourceFile& source, Diagnostics& diags);

}  // namespace cnnc
