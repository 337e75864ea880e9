#include "Lexer.h"

#include <cctype>

#include <fmt/format.h>

#include "Diagnostics.h"
#include "SourceFile.h"

namespace cnnc {

const char* tokenKindName(TokenKind kind) {
  switch (kind) {
    case TokenKind::Identifier:
      return "identifier";
    case TokenKind::Number:
      return "number";
    case TokenKind::Dimensions:
      return "dimensions";
    case TokenKind::Invalid:
      return "malformed number";
    case TokenKind::Colon:
      return "':'";
    case TokenKind::Equals:
      return "'='";
    case TokenKind::Comma:
      return "','";
    case TokenKind::EndOfStatement:
      return "end of line";
    case TokenKind::EndOfFile:
      return "end of file";
  }
  return "token";
}

namespace {

bool isIdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool isIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}
bool isDigit(char c) {
  return std::isdigit(static_cast<unsigned char>(c)) != 0;
}

// number := [-+]? (digits ('.' digits?)? | '.' digits) ([eE] [-+]? digits)?
bool isNumber(const std::string& s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && isDigit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && isDigit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exponentDigits = 0;
    while (i < s.size() && isDigit(s[i])) ++i, ++exponentDigits;
    if (exponentDigits == 0) return false;
  }
  return i == s.size();
}

// dimensions := digits ('x' digits)+
bool isDimensions(const std::string& s) {
  size_t i = 0, groups = 0;
  while (true) {
    size_t start = i;
    while (i < s.size() && isDigit(s[i])) ++i;
    if (i == start) return false;
    ++groups;
    if (i == s.size()) return groups >= 2;
    if (s[i] != 'x') return false;
    ++i;
  }
}

class Lexer {
 public:
  Lexer(const SourceFile& source, Diagnostics& diags)
      : text_(source.text()), file_(source.name()), diags_(diags) {}

  std::vector<Token> run() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '\n') {
        emitEndOfStatement();
        newLine();
      } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
        advance();
      } else if (c == '#') {
        skipComment();
      } else if (c == '\\') {
        lineJoin();
      } else if (isIdentStart(c)) {
        word(TokenKind::Identifier, isIdentChar);
      } else if (isDigit(c) || c == '-' || c == '+' || c == '.') {
        numberLike();
      } else if (c == ':' || c == '=' || c == ',') {
        TokenKind kind = c == ':'   ? TokenKind::Colon
                         : c == '=' ? TokenKind::Equals
                                    : TokenKind::Comma;
        push(kind, pos_, 1);
        advance();
      } else {
        unexpectedCharacter();
      }
    }
    emitEndOfStatement();
    tokens_.push_back({TokenKind::EndOfFile, "", {file_, line_, col_, 1}, pos_});
    return std::move(tokens_);
  }

 private:
  void advance() {
    // Columns count characters: skip UTF-8 continuation bytes.
    ++pos_;
    while (pos_ < text_.size() && (static_cast<unsigned char>(text_[pos_]) & 0xC0) == 0x80) ++pos_;
    ++col_;
  }
  void newLine() {
    ++pos_;
    ++line_;
    col_ = 1;
  }
  Location here(int length = 1) const { return {file_, line_, col_, length}; }

  void push(TokenKind kind, size_t start, size_t length) {
    int col = col_;
    tokens_.push_back(
        {kind, text_.substr(start, length), {file_, line_, col, static_cast<int>(length)}, start});
  }

  void emitEndOfStatement() {
    if (!tokens_.empty() && tokens_.back().kind != TokenKind::EndOfStatement)
      tokens_.push_back({TokenKind::EndOfStatement, "", here(), pos_});
  }

  void skipComment() {
    while (pos_ < text_.size() && text_[pos_] != '\n') advance();
  }

  // A `\` followed by nothing but blanks or a comment joins the next line.
  void lineJoin() {
    Location slash = here();
    advance();
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r'))
      advance();
    if (pos_ < text_.size() && text_[pos_] == '#') skipComment();
    if (pos_ < text_.size() && text_[pos_] != '\n') {
      diags_.error(slash, "'\\' joins lines only as the last character of a line");
      return;
    }
    if (pos_ < text_.size()) newLine();
  }

  template <typename Pred>
  void word(TokenKind kind, Pred accept) {
    size_t start = pos_;
    int col = col_;
    while (pos_ < text_.size() && accept(text_[pos_])) advance();
    tokens_.push_back({kind,
                       text_.substr(start, pos_ - start),
                       {file_, line_, col, static_cast<int>(pos_ - start)},
                       start});
  }

  // Numbers and dimensions: take the longest run that could belong to one,
  // then classify it, so that `5x` or `1.2.3` is one malformed token.
  void numberLike() {
    size_t start = pos_;
    int col = col_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      bool sign = (c == '-' || c == '+') &&
                  (pos_ == start || text_[pos_ - 1] == 'e' || text_[pos_ - 1] == 'E');
      if (!(isIdentChar(c) || c == '.' || sign)) break;
      advance();
    }
    std::string text = text_.substr(start, pos_ - start);
    Location loc{file_, line_, col, static_cast<int>(text.size())};
    if (isNumber(text)) {
      tokens_.push_back({TokenKind::Number, text, loc, start});
    } else if (isDimensions(text)) {
      tokens_.push_back({TokenKind::Dimensions, text, loc, start});
    } else {
      diags_.error(loc, fmt::format("malformed number '{}'", text));
      // Kept as a value so that the statement around it parses on.
      tokens_.push_back({TokenKind::Invalid, text, loc, start});
    }
  }

  void unexpectedCharacter() {
    size_t start = pos_;
    Location loc = here();
    advance();
    std::string character = text_.substr(start, pos_ - start);
    diags_.error(loc, fmt::format("unexpected character '{}'", character));
  }

  const std::string& text_;
  std::string file_;
  Diagnostics& diags_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;
};

}  // namespace

std::vector<Token> lex(const SourceFile& source, Diagnostics& diags) {
  return Lexer(source, diags).run();
}

}  // namespace cnnc
