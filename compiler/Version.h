#pragma once

namespace cnnc {

constexpr const char* kVersion = "0.1.0";

}  // namespace cnnc
