#include <catch2/catch.hpp>

#include "Diagnostics.h"
#include "Lexer.h"
#include "SourceFile.h"

using namespace cnnc;

static std::vector<Token> lexText(const std::string& text, Diagnostics& diags) {
  SourceFile source = SourceFile::fromText("t.net", text, diags);
  return lex(source, diags);
}

static std::vector<TokenKind> kinds(const std::vector<Token>& tokens) {
  std::vector<TokenKind> out;
  for (const auto& t : tokens) out.push_back(t.kind);
  return out;
}

TEST_CASE("lexer: identifiers, numbers, dimensions and punctuation", "[lexer]") {
  Diagnostics diags;
  auto tokens = lexText("conv1: conv2d filters=6 kernel=5x3 lr=1e-5 x=-0.5 from=a,b\n", diags);
  REQUIRE_FALSE(diags.hasErrors());
  using K = TokenKind;
  CHECK(kinds(tokens) ==
        std::vector<K>{K::Identifier,     K::Colon,      K::Identifier, K::Identifier,
                       K::Equals,         K::Number,     K::Identifier, K::Equals,
                       K::Dimensions,     K::Identifier, K::Equals,     K::Number,
                       K::Identifier,     K::Equals,     K::Number,     K::Identifier,
                       K::Equals,         K::Identifier, K::Comma,      K::Identifier,
                       K::EndOfStatement, K::EndOfFile});
  CHECK(tokens[8].text == "5x3");
  CHECK(tokens[11].text == "1e-5");
  CHECK(tokens[14].text == "-0.5");
}

TEST_CASE("lexer: locations are 1-based lines and character columns", "[lexer]") {
  Diagnostics diags;
  auto tokens = lexText("network n\n\n  input\t1x28x28 # comment\n", diags);
  REQUIRE(tokens.size() >= 5);
  CHECK(tokens[0].loc.line == 1);
  CHECK(tokens[0].loc.col == 1);
  CHECK(tokens[1].loc.col == 9);
  CHECK(tokens[3].text == "input");
  CHECK(tokens[3].loc.line == 3);
  CHECK(tokens[3].loc.col == 3);
  CHECK(tokens[4].loc.col == 9);
  CHECK(tokens[4].loc.length == 7);
}

TEST_CASE("lexer: comments vanish and a backslash joins lines", "[lexer]") {
  Diagnostics diags;
  auto tokens = lexText("train a=1 \\  # note\n      b=2\n# whole line\n\nnext\n", diags);
  REQUIRE_FALSE(diags.hasErrors());
  int statements = 0;
  for (const auto& t : tokens) statements += t.kind == TokenKind::EndOfStatement;
  CHECK(statements == 2);
  CHECK(tokens[4].text == "b");
  CHECK(tokens[4].loc.line == 2);
}

TEST_CASE("lexer: CRLF line ends and a byte order mark are accepted", "[lexer]") {
  Diagnostics diags;
  auto tokens = lexText("\xEF\xBB\xBFnetwork n\r\ninput 784\r\n", diags);
  REQUIRE_FALSE(diags.hasErrors());
  CHECK(tokens[0].text == "network");
  CHECK(tokens[0].loc.col == 1);
  CHECK(tokens[3].text == "input");
}

TEST_CASE("lexer: malformed numbers are single errors", "[lexer]") {
  for (std::string bad : {"1.2.3", "5x", "x=1e", "3x3x", "12abc", "--1"}) {
    Diagnostics diags;
    lexText("a " + bad + "\n", diags);
    CAPTURE(bad);
    CHECK(diags.errors().size() == 1);
  }
}

TEST_CASE("lexer: non-ASCII characters in code are reported at their column", "[lexer]") {
  Diagnostics diags;
  lexText("# é ok in a comment\nnet é\n", diags);
  REQUIRE(diags.errors().size() == 1);
  CHECK(diags.errors()[0].loc.line == 2);
  CHECK(diags.errors()[0].loc.col == 5);
  CHECK(diags.errors()[0].message == "unexpected character 'é'");
}
