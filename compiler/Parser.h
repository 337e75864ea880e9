// A recursive-descent parser from tokens to the AST. Each method carries its
// grammar rule; a malformed statement is reported and skipped so that the
// statements after it are still checked.
#pragma once

#include <vector>

#include "AST.h"

namespace cnnc {

class Diagnostics;

FileAST parse(const std::vector<Token>& tokens, Diagnostics& diags);

}  // namespace cnnc
