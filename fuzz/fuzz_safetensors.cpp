// Fuzzes the safetensors reader: any bytes must give a file or a cnnc::Error,
// never a crash, a hang, a huge allocation or a read out of bounds. A file
// that parses must pass its own check, and serialize and parse back to the
// same tensors and metadata, bit for bit.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "Error.h"
#include "Safetensors.h"

namespace {

[[noreturn]] void failRoundTrip(const char* what) {
  std::fprintf(stderr, "safetensors round trip: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace safetensors = cnnc::safetensors;
  safetensors::File file;
  try {
    file = safetensors::parse(data, size, "fuzz.safetensors");
  } catch (const cnnc::Error&) {
    return 0;
  }

  // The file fits a network whose parameters are its floating tensors.
  safetensors::File floats;
  floats.metadata = file.metadata;
  std::vector<safetensors::ExpectedTensor> expected;
  for (const safetensors::Tensor& tensor : file.tensors) {
    if (!tensor.isFloat()) continue;
    floats.tensors.push_back(tensor);
    expected.push_back({tensor.name, tensor.shape});
  }
  try {
    // The empty suffix passes over the integer tensors.
    safetensors::check(file, expected, "fuzz.safetensors", {}, {""});
  } catch (const cnnc::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    failRoundTrip("a parsed file does not pass its own check");
  }

  // What was read is written as F32 and reads back the same.
  std::string bytes = safetensors::serialize(floats);
  if ((bytes.size() - 8) % 4 != 0) failRoundTrip("header not padded");
  safetensors::File again = safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()),
                                               bytes.size(), "again.safetensors");
  if (again.metadata != floats.metadata) failRoundTrip("metadata differs");
  if (again.tensors.size() != floats.tensors.size()) failRoundTrip("tensor count differs");
  for (size_t i = 0; i < again.tensors.size(); ++i) {
    const safetensors::Tensor& before = floats.tensors[i];
    const safetensors::Tensor& after = again.tensors[i];
    if (after.name != before.name || after.shape != before.shape || after.dtype != "F32" ||
        after.data.size() != before.data.size())
      failRoundTrip("a tensor's name, shape or size differs");
    if (!after.data.empty() &&
        std::memcmp(after.data.data(), before.data.data(), after.data.size() * 4) != 0)
      failRoundTrip("a tensor's values differ");
  }
  if (safetensors::serialize(again) != bytes) failRoundTrip("a second serialization differs");
  return 0;
}
