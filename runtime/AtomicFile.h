// Writing a file so that readers see the old content or the new, never a
// partial one: write a temporary file beside it, flush it to disk, rename it
// over the target.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace cnnc {

// Calls `writer` with a stream onto a temporary file in the target's
// directory, then fsyncs it and renames it over `path` (an existing file
// keeps its permission bits). On failure the previous file is untouched, the
// temporary file is removed, and a cnnc::Error naming `path` and the system's
// reason is thrown; an exception thrown by `writer` itself propagates as is.
void writeFileAtomically(const std::string& path, const std::function<void(std::ostream&)>& writer);

void writeFileAtomically(const std::string& path, std::string_view bytes);

}  // namespace cnnc
