// safetensors (an 8-byte little-endian header length, a JSON header, raw
// little-endian data), read with every field checked: a malformed or lying
// file is refused with a cnnc::Error naming the file and the field or tensor
// at fault, never read out of bounds, and never the cause of an allocation
// larger than a small multiple of the file's size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cnnc::safetensors {

// The reference implementation's limit on the header's size.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Names under this prefix hold a training checkpoint's optimizer state, not
// the network's parameters.
inline constexpr char kOptimizerPrefix[] = "optimizer.";

struct Tensor {
  std::string name;
  std::string dtype = "F32";  // as stored: F32, F64, F16, BF16, I64, ... (cnnc writes F32)
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major; floating dtypes converted to float, empty otherwise

  bool isFloat() const;
  // The product of the shape; throws cnnc::Error on a negative dimension or
  // an overflow (possible only for a tensor built by hand).
  int64_t elements() const;
};

struct File {
  std::vector<Tensor> tensors;                  // sorted by name when read
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"

  const Tensor* find(const std::string& name) const;  // null when absent
};

// Parses a whole file held in memory; `source` names it in messages
// (usually its path).
File parse(const uint8_t* bytes, size_t size, const std::string& source);

// Reads and parses the regular file at `path`, reading each tensor's data
// straight into place.
File read(const std::string& path);

// The file's bytes in the reference implementation's layout: the header
// padded with spaces to a multiple of 8, "__metadata__" first, then the
// tensors sorted by name, stored contiguously in that order. Every tensor is
// written as F32 whatever its `dtype` says (its data is float).
std::string serialize(const File& file);

// serialize() to `path`, atomically (see AtomicFile.h).
void write(const std::string& path, const File& file);

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// Refuses a file that does not fit a network's parameters, naming the
// tensor: a missing one ("missing tensor 'conv1.weight'"), an extra one
// ("unexpected tensor 'foo' (the network has no such parameter)"), a
// misshaped one ("tensor 'fc1.weight' has shape [10, 84], expected [84,
// 120]") or one that is not floating point. Extra names that start with one
// of `ignoredPrefixes` (e.g. kOptimizerPrefix, where the caller accepts a
// checkpoint) or end with one of `ignoredSuffixes` are passed over.
void check(const File& file, const std::vector<ExpectedTensor>& expected, const std::string& source,
           const std::vector<std::string>& ignoredPrefixes = {},
           const std::vector<std::string>& ignoredSuffixes = {});

std::string shapeString(const std::vector<int64_t>& shape);  // "[10, 84]"

}  // namespace cnnc::safetensors
