// The table `cnnc check` prints: one row per layer and the totals.
#pragma once

#include <string>

#include "IR.h"

namespace cnnc {

std::string layerTable(const Network& net);

// 61706 -> "61,706"
std::string withThousands(int64_t n);

}  // namespace cnnc
