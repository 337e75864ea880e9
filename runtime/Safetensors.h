// safetensors (an 8-byte little-endian header length, a JSON header, raw
// little-endian data), read with every field checked: a malformed or lying
// file is refused with a cnnc::Error naming the file and the field or tensor
// at fault, never read out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cnnc::safetensors {

struct Tensor {
  std::string name;
  std::string dtype;             // as stored: F32, F64, F16, BF16, I64, ...
  std::vector<int64_t> shape;
  std::vector<float> data;       // converted to float for floating dtypes; empty otherwise
  bool isFloat() const { return dtype == "F32" || dtype == "F64" || dtype == "F16" || dtype == "BF16"; }
  int64_t elements() const;
};

struct File {
  std::vector<Tensor> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;

  const Tensor* find(const std::string& name) const;
};

// `source` names the bytes in messages (usually the path).
File parse(const uint8_t* bytes, size_t size, const std::string& source);
File read(const std::string& path);

// F32 tensors in the reference layout: sorted by name, contiguous, the
// header padded with spaces to a multiple of 8.
std::string serialize(const File& file);
void write(const std::string& path, const File& file);  // atomic

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// Refuses a file that does not fit: a missing, extra or misshaped tensor, or
// a tensor that is not floating point. Names that start with one of
// `ignoredPrefixes` or end with one of `ignoredSuffixes` are passed over.
void check(const File& file, const std::vector<ExpectedTensor>& expected, const std::string& source,
           const std::vector<std::string>& ignoredPrefixes = {},
           const std::vector<std::string>& ignoredSuffixes = {});

std::string shapeString(const std::vector<int64_t>& shape);  // "[10, 84]"

}  // namespace cnnc::safetensors
