// Writing a file so that readers see the old content or the new, never a
// partial one: write a temporary file beside it, flush it to disk, rename.
#pragma once

#include <string>
#include <string_view>

namespace cnnc {

// Throws cnnc::Error naming the path and the system's reason; on failure
// the previous file is untouched and no temporary file is left behind.
void writeFileAtomically(const std::string& path, std::string_view bytes);

}  // namespace cnnc
