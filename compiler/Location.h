// A place in a .net file, kept on every token, AST node and IR layer so that
// every diagnostic can point at the offending text.
#pragma once

#include <string>

namespace cnnc {

struct Location {
  std::string file;
  int line = 0;    // 1-based
  int col = 0;     // 1-based, in characters
  int length = 1;  // characters underlined by the caret
};

}  // namespace cnnc
