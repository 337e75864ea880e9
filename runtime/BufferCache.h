// Halide's scratch allocations for the generated pipelines, kept for reuse:
// a training step or forward pass asks for the same buffers every call, so
// after the first call no memory is allocated (and large blocks are not
// mapped and faulted in again, as the system allocator does above its mmap
// threshold). Installed once per process by the first Model.
#pragma once

namespace cnnc {

void installBufferCache();

}  // namespace cnnc
