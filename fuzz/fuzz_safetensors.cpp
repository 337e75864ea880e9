// Fuzzes the safetensors reader: any bytes must give a file or a cnnc::Error,
// never a crash, a hang or a read out of bounds; a file that parses must
// serialize and parse back to the same tensors.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "Error.h"
#include "Safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cnnc;
  safetensors::File file;
  try {
    file = safetensors::parse(data, size, "fuzz.safetensors");
  } catch (const Error&) {
    return 0;
  }
  // Round trip the floating-point tensors (others cnnc never writes).
  safetensors::File floats;
  for (const auto& t : file.tensors)
    if (t.dtype == "F32") floats.tensors.push_back(t);
  std::string bytes = safetensors::serialize(floats);
  safetensors::File again = safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "again");
  if (again.tensors.size() != floats.tensors.size()) abort();
  for (size_t i = 0; i < again.tensors.size(); ++i)
    if (again.tensors[i].shape != floats.tensors[i].shape ||
        memcmp(again.tensors[i].data.data(), floats.tensors[i].data.data(), again.tensors[i].data.size() * 4) != 0)
      abort();
  return 0;
}
