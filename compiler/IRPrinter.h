// The IR as text (`--emit ir`): a canonical .net file in which every layer is
// named, reads its inputs through an explicit `from=`, and spells out every
// key; shapes and parameter counts follow as comments. Parsing the text back
// gives the same IR.
#pragma once

#include <string>

#include "IR.h"

namespace cnnc {

std::string printIR(const Network& net);

}  // namespace cnnc
