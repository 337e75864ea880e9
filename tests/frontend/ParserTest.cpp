#include <catch2/catch.hpp>

#include "Diagnostics.h"
#include "Lexer.h"
#include "Parser.h"
#include "SourceFile.h"

using namespace cnnc;

static FileAST parseText(const std::string& text, Diagnostics& diags) {
  SourceFile source = SourceFile::fromText("t.net", text, diags);
  return parse(lex(source, diags), diags);
}

TEST_CASE("parser: statements, names, keys and lists", "[parser]") {
  Diagnostics diags;
  FileAST file = parseText(
      "network lenet5\ninput 1x28x28\nconv1: conv2d filters=6 kernel=5\nadd from=a,b\n"
      "train loss=mse \\\n  lr=0.1\n",
      diags);
  REQUIRE_FALSE(diags.hasErrors());
  REQUIRE(file.statements.size() == 5);
  CHECK(file.statements[0].kind == StatementKind::Network);
  CHECK(file.statements[0].argument->text == "lenet5");
  CHECK(file.statements[1].kind == StatementKind::Input);
  CHECK(file.statements[1].argument->kind == TokenKind::Dimensions);
  const Statement& conv = file.statements[2];
  CHECK(conv.kind == StatementKind::Layer);
  CHECK(conv.name->text == "conv1");
  CHECK(conv.keyword.text == "conv2d");
  REQUIRE(conv.keys.size() == 2);
  CHECK(conv.keys[1].key.text == "kernel");
  CHECK(conv.keys[1].value.atoms[0].text == "5");
  const Statement& add = file.statements[3];
  REQUIRE(add.keys.size() == 1);
  CHECK(add.keys[0].value.isList());
  CHECK(add.keys[0].value.atoms.size() == 2);
  CHECK(file.statements[4].kind == StatementKind::Train);
  CHECK(file.statements[4].keys.size() == 2);
}

TEST_CASE("parser: a bad statement is skipped and the next ones still parse", "[parser]") {
  Diagnostics diags;
  FileAST file =
      parseText("network n\ninput 784\ndense units 10\nrelu\n: dense\ndense units=3\n", diags);
  CHECK(diags.errors().size() == 2);
  REQUIRE(file.statements.size() == 4);
  CHECK(file.statements[2].keyword.text == "relu");
  CHECK(file.statements[3].keys[0].value.atoms[0].text == "3");
}

TEST_CASE("parser: key=value may have spaces around '=' but lists may not", "[parser]") {
  Diagnostics diags;
  FileAST file = parseText("network n\ninput 784\ndense units = 10\n", diags);
  CHECK_FALSE(diags.hasErrors());
  Diagnostics listDiags;
  parseText("network n\ninput 784\nadd from=a ,b\n", listDiags);
  CHECK(listDiags.errors().size() == 1);
}

TEST_CASE("parser: input and network need their argument", "[parser]") {
  Diagnostics diags;
  parseText("network\ninput\ninput relu\nnetwork 5\n", diags);
  CHECK(diags.errors().size() == 4);
}
