#include "Safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "AtomicFile.h"
#include "Error.h"

namespace cnnc::safetensors {

namespace {

using nlohmann::json;

// The reference implementation's limit on the header's size.
constexpr uint64_t kMaxHeaderBytes = 100 * 1000 * 1000;

int64_t dtypeSize(const std::string& dtype) {
  static const std::map<std::string, int64_t> kSizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1}};
  auto it = kSizes.find(dtype);
  return it == kSizes.end() ? 0 : it->second;
}

uint64_t readLittleEndian64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exponent = 127 - 15 + 1;
      while (!(mantissa & 0x400)) mantissa <<= 1, --exponent;
      bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void convert(Tensor& tensor, const uint8_t* bytes) {
  if (!tensor.isFloat()) return;
  size_t n = static_cast<size_t>(tensor.elements());
  tensor.data.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (tensor.dtype == "F32") {
      uint32_t bits = 0;
      for (int b = 3; b >= 0; --b) bits = (bits << 8) | bytes[i * 4 + b];
      std::memcpy(&tensor.data[i], &bits, 4);
    } else if (tensor.dtype == "F64") {
      uint64_t bits = readLittleEndian64(bytes + i * 8);
      double d;
      std::memcpy(&d, &bits, 8);
      tensor.data[i] = static_cast<float>(d);
    } else {
      uint16_t bits = static_cast<uint16_t>(bytes[i * 2] | (bytes[i * 2 + 1] << 8));
      if (tensor.dtype == "F16") {
        tensor.data[i] = halfToFloat(bits);
      } else {  // BF16: the top half of an F32
        uint32_t wide = static_cast<uint32_t>(bits) << 16;
        std::memcpy(&tensor.data[i], &wide, 4);
      }
    }
  }
}

}  // namespace

int64_t Tensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const Tensor* File::find(const std::string& name) const {
  for (const Tensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

File parse(const uint8_t* bytes, size_t size, const std::string& source) {
  auto fail = [&](const std::string& what) -> Error { return Error("'" + source + "': " + what); };
  if (size < 8) throw fail("not a safetensors file: " + std::to_string(size) + " bytes, too short for the header length");
  uint64_t headerSize = readLittleEndian64(bytes);
  if (headerSize > kMaxHeaderBytes || headerSize > size - 8)
    throw fail("header length " + std::to_string(headerSize) + " runs past the end of the file (" +
               std::to_string(size) + " bytes)");
  const char* headerBegin = reinterpret_cast<const char*>(bytes + 8);
  json header;
  std::string duplicate;
  // nlohmann keeps the last of repeated keys; the format forbids them.
  json::parser_callback_t rejectDuplicates = [&, names = std::vector<std::string>()](
                                                 int depth, json::parse_event_t event, json& parsed) mutable {
    if (depth == 1 && event == json::parse_event_t::key && duplicate.empty()) {
      std::string name = parsed.get<std::string>();
      if (std::find(names.begin(), names.end(), name) != names.end()) duplicate = name;
      names.push_back(name);
    }
    return true;
  };
  try {
    header = json::parse(headerBegin, headerBegin + headerSize, rejectDuplicates);
  } catch (const json::exception& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  if (!duplicate.empty()) throw fail("tensor '" + duplicate + "' appears twice in the header");

  const uint8_t* data = bytes + 8 + headerSize;
  uint64_t dataSize = size - 8 - headerSize;
  File file;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();
    const json& entry = item.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw fail("__metadata__ value of '" + key + "' is not a string");
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    auto tensorFail = [&](const std::string& what) { return fail("tensor '" + name + "': " + what); };
    if (!entry.is_object()) throw tensorFail("entry is not an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(field)) throw tensorFail(std::string("missing field '") + field + "'");
    Tensor tensor;
    tensor.name = name;
    if (!entry["dtype"].is_string()) throw tensorFail("dtype is not a string");
    tensor.dtype = entry["dtype"].get<std::string>();
    int64_t elementSize = dtypeSize(tensor.dtype);
    if (elementSize == 0) throw tensorFail("dtype '" + tensor.dtype + "' is not supported");
    if (!entry["shape"].is_array()) throw tensorFail("shape is not an array");
    uint64_t elements = 1;
    for (const json& d : entry["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw tensorFail("shape " + entry["shape"].dump() + " has a dimension that is not a non-negative integer");
      uint64_t extent = d.get<uint64_t>();
      if (extent != 0 && elements > std::numeric_limits<uint64_t>::max() / extent / 8)
        throw tensorFail("shape " + entry["shape"].dump() + " overflows");
      elements *= extent;
      tensor.shape.push_back(static_cast<int64_t>(extent));
    }
    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throw tensorFail("data_offsets is not a pair of non-negative integers");
    uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end) throw tensorFail("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
    if (end > dataSize)
      throw tensorFail("data_offsets end " + std::to_string(end) + " is past the end of the data (" +
                       std::to_string(dataSize) + " bytes; is the file truncated?)");
    if (end - begin != elements * static_cast<uint64_t>(elementSize))
      throw tensorFail("holds " + std::to_string(end - begin) + " bytes but shape " + shapeString(tensor.shape) +
                       " of " + tensor.dtype + " needs " + std::to_string(elements * elementSize));
    convert(tensor, data + begin);
    ranges.push_back({begin, end, name});
    file.tensors.push_back(std::move(tensor));
  }
  // Every byte of the data belongs to exactly one tensor.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const Range& r : ranges) {
    if (r.begin < covered) throw fail("tensor '" + r.name + "' overlaps another tensor's data");
    if (r.begin > covered) throw fail("bytes " + std::to_string(covered) + ".." + std::to_string(r.begin) +
                                      " of the data belong to no tensor");
    covered = r.end;
  }
  if (covered != dataSize)
    throw fail("the last " + std::to_string(dataSize - covered) + " bytes of the data belong to no tensor");
  std::sort(file.tensors.begin(), file.tensors.end(),
            [](const Tensor& a, const Tensor& b) { return a.name < b.name; });
  return file;
}

File read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("cannot read '" + path + "'");
  return parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

std::string serialize(const File& file) {
  std::vector<const Tensor*> sorted;
  for (const Tensor& t : file.tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const Tensor* a, const Tensor* b) { return a->name < b->name; });
  json header = json::object();
  uint64_t offset = 0;
  for (const Tensor* t : sorted) {
    if (static_cast<int64_t>(t->data.size()) != t->elements())
      throw Error("tensor '" + t->name + "' has " + std::to_string(t->data.size()) + " values for shape " +
                  shapeString(t->shape));
    uint64_t bytes = t->data.size() * 4;
    header[t->name] = {{"dtype", "F32"}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  out += text;
  out.reserve(out.size() + offset);
  for (const Tensor* t : sorted)
    for (float v : t->data) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((bits >> (8 * b)) & 0xFF));
    }
  return out;
}

void write(const std::string& path, const File& file) { writeFileAtomically(path, serialize(file)); }

void check(const File& file, const std::vector<ExpectedTensor>& expected, const std::string& source,
           const std::vector<std::string>& ignoredPrefixes, const std::vector<std::string>& ignoredSuffixes) {
  auto ignored = [&](const std::string& name) {
    for (const auto& p : ignoredPrefixes)
      if (name.compare(0, p.size(), p) == 0) return true;
    for (const auto& s : ignoredSuffixes)
      if (name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) return true;
    return false;
  };
  for (const ExpectedTensor& e : expected) {
    const Tensor* t = file.find(e.name);
    if (!t) throw Error("'" + source + "': missing tensor '" + e.name + "'");
    if (t->shape != e.shape)
      throw Error("'" + source + "': tensor '" + e.name + "' has shape " + shapeString(t->shape) + ", expected " +
                  shapeString(e.shape));
    if (!t->isFloat())
      throw Error("'" + source + "': tensor '" + e.name + "' has dtype " + t->dtype + ", expected F32");
  }
  for (const Tensor& t : file.tensors) {
    bool known = std::any_of(expected.begin(), expected.end(), [&](const ExpectedTensor& e) { return e.name == t.name; });
    if (!known && !ignored(t.name))
      throw Error("'" + source + "': unexpected tensor '" + t.name + "' (the network has no such parameter)");
  }
}

}  // namespace cnnc::safetensors
