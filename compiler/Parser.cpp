#include "Parser.h"

#include <fmt/format.h>

#include "Diagnostics.h"
#include "LayerKinds.h"

namespace cnnc {
namespace {

std::string describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::EndOfStatement:
    case TokenKind::EndOfFile:
      return tokenKindName(token.kind);
    default:
      return fmt::format("'{}'", token.text);
  }
}

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, Diagnostics& diags) : tokens_(tokens), diags_(diags) {}

  // file := { statement EndOfStatement } EndOfFile
  FileAST parseFile() {
    FileAST file;
    while (peek().kind != TokenKind::EndOfFile) {
      if (peek().kind == TokenKind::EndOfStatement) {
        next();
        continue;
      }
      if (auto statement = parseStatement()) file.statements.push_back(std::move(*statement));
      skipToEndOfStatement();
    }
    file.end = peek().loc;
    return file;
  }

 private:
  const Token& peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  const Token& next() {
    const Token& token = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return token;
  }
  bool atStatementEnd() const {
    return peek().kind == TokenKind::EndOfStatement || peek().kind == TokenKind::EndOfFile;
  }
  void skipToEndOfStatement() {
    while (!atStatementEnd()) next();
  }

  // statement := 'network' IDENT | 'input' (DIMENSIONS | NUMBER)
  //            | 'train' { keyValue } | [IDENT ':'] IDENT { keyValue }
  std::optional<Statement> parseStatement() {
    const Token& first = peek();
    if (first.kind != TokenKind::Identifier) {
      diags_.error(first.loc, fmt::format("expected a statement, found {}", describe(first)));
      return std::nullopt;
    }
    Statement statement;
    if (peek(1).kind == TokenKind::Colon) {
      statement.name = next();
      next();  // ':'
      if (peek().kind != TokenKind::Identifier) {
        diags_.error(peek().loc, fmt::format("expected a layer kind after '{}:', found {}",
                                             statement.name->text, describe(peek())));
        return std::nullopt;
      }
      statement.kind = StatementKind::Layer;
      statement.keyword = next();
    } else {
      statement.keyword = next();
      const std::string& word = statement.keyword.text;
      statement.kind = word == "network" ? StatementKind::Network
                       : word == "input" ? StatementKind::Input
                       : word == "train" ? StatementKind::Train
                                         : StatementKind::Layer;
    }
    if (statement.kind == StatementKind::Layer && !findKind(statement.keyword.text)) {
      // Reported here, before its keys: `netwrk lenet5` is a misspelt
      // statement, not a key without a value.
      std::vector<std::string> words = {"network", "input", "train"};
      for (const auto& info : layerKinds()) words.push_back(info.name);
      diags_.error(statement.keyword.loc,
                   fmt::format("unknown {} '{}'{}",
                               statement.name ? "layer kind" : "statement or layer kind",
                               statement.keyword.text, didYouMean(statement.keyword.text, words)));
      skipToEndOfStatement();
      statement.kind = StatementKind::Unknown;
      return statement;  // kept, so that later layers may still name it
    }
    switch (statement.kind) {
      case StatementKind::Network:
        if (!parseArgument(statement, {TokenKind::Identifier}, "a network name"))
          return std::nullopt;
        break;
      case StatementKind::Input:
        if (!parseArgument(statement, {TokenKind::Dimensions, TokenKind::Number},
                           "an input shape such as 1x28x28 or 784"))
          return std::nullopt;
        break;
      case StatementKind::Unknown:
      case StatementKind::Layer:
      case StatementKind::Train:
        if (!parseKeyValues(statement)) return std::nullopt;
        break;
    }
    if (!atStatementEnd()) {
      diags_.error(peek().loc, fmt::format("unexpected {} after the '{}' statement",
                                           describe(peek()), statement.keyword.text));
      return std::nullopt;
    }
    return statement;
  }

  bool parseArgument(Statement& statement, std::initializer_list<TokenKind> kinds,
                     const char* what) {
    for (TokenKind kind : kinds) {
      if (peek().kind == kind) {
        statement.argument = next();
        return true;
      }
    }
    if (peek().kind == TokenKind::Invalid) return false;  // already reported
    const Token& at = atStatementEnd() ? statement.keyword : peek();
    diags_.error(at.loc, fmt::format("'{}' expects {}, found {}", statement.keyword.text, what,
                                     describe(peek())));
    return false;
  }

  // keyValue := IDENT '=' value
  bool parseKeyValues(Statement& statement) {
    while (!atStatementEnd()) {
      const Token& key = peek();
      if (key.kind != TokenKind::Identifier) {
        diags_.error(key.loc, fmt::format("expected key=value, found {}", describe(key)));
        return false;
      }
      next();
      if (peek().kind != TokenKind::Equals) {
        diags_.error(
            key.loc,
            fmt::format("expected '=' after '{}' (settings are written key=value)", key.text));
        return false;
      }
      next();
      std::optional<ValueNode> value = parseValue(key);
      if (!value) return false;
      statement.keys.push_back({key, std::move(*value)});
    }
    return true;
  }

  // value := atom { ',' atom }   with no spaces inside the list
  // atom  := IDENT | NUMBER | DIMENSIONS
  std::optional<ValueNode> parseValue(const Token& key) {
    ValueNode value;
    while (true) {
      const Token& atom = peek();
      bool isAtom = atom.kind == TokenKind::Identifier || atom.kind == TokenKind::Number ||
                    atom.kind == TokenKind::Dimensions || atom.kind == TokenKind::Invalid;
      if (!isAtom) {
        diags_.error(atom.loc,
                     fmt::format("expected a value for '{}', found {}", key.text, describe(atom)));
        return std::nullopt;
      }
      value.atoms.push_back(next());
      if (peek().kind != TokenKind::Comma) break;
      const Token& comma = peek();
      if (!value.atoms.back().touches(comma) || !comma.touches(peek(1))) {
        diags_.error(comma.loc, "a list is written without spaces around ',' (e.g. from=a,b)");
        return std::nullopt;
      }
      next();
    }
    const Location& first = value.atoms.front().loc;
    const Token& last = value.atoms.back();
    value.loc = first;
    value.loc.length = static_cast<int>(last.end() - value.atoms.front().offset);
    return value;
  }

  const std::vector<Token>& tokens_;
  Diagnostics& diags_;
  size_t pos_ = 0;
};

}  // namespace

FileAST parse(const std::vector<Token>& tokens, Diagnostics& diags) {
  return Parser(tokens, diags).parseFile();
}

}  // namespace cnnc
