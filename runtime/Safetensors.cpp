#include "Safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "AtomicFile.h"
#include "Error.h"

namespace cnnc::safetensors {

namespace {

using nlohmann::json;

enum class Encoding { kF32, kF64, kF16, kBF16, kNotFloat };

struct Dtype {
  const char* name;
  uint64_t size;
  Encoding encoding;
};

// The format's dtypes less the 8-bit floats. Integer and boolean tensors
// (such as a PyTorch batchnorm's step counter) are read for their name and
// shape only.
constexpr Dtype kDtypes[] = {{"F32", 4, Encoding::kF32},      {"F64", 8, Encoding::kF64},
                             {"F16", 2, Encoding::kF16},      {"BF16", 2, Encoding::kBF16},
                             {"I64", 8, Encoding::kNotFloat}, {"I32", 4, Encoding::kNotFloat},
                             {"I16", 2, Encoding::kNotFloat}, {"I8", 1, Encoding::kNotFloat},
                             {"U64", 8, Encoding::kNotFloat}, {"U32", 4, Encoding::kNotFloat},
                             {"U16", 2, Encoding::kNotFloat}, {"U8", 1, Encoding::kNotFloat},
                             {"BOOL", 1, Encoding::kNotFloat}};

const Dtype* findDtype(const std::string& name) {
  for (const Dtype& dtype : kDtypes)
    if (name == dtype.name) return &dtype;
  return nullptr;
}

bool hostIsLittleEndian() {
  const uint16_t one = 1;
  uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

uint64_t loadLittleEndian(const uint8_t* bytes, int count) {
  uint64_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

float halfToFloat(uint16_t half) {
  uint32_t sign = (half & 0x8000u) << 16;
  uint32_t exponent = (half >> 10) & 0x1F;
  uint32_t mantissa = half & 0x3FF;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exponent = 127 - 15 + 1;
      while (!(mantissa & 0x400)) mantissa <<= 1, --exponent;
      bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
    }
  } else if (exponent == 31) {  // infinity or NaN
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// Rounds to nearest like the hardware, without the undefined behaviour of
// converting a double beyond float's range.
float doubleToFloat(double value) {
  if (std::isfinite(value) && std::fabs(value) > FLT_MAX) {
    // FLT_MAX's last mantissa bit is odd, so the halfway point rounds up.
    const double halfway = static_cast<double>(FLT_MAX) + 0x1p103;
    float magnitude = std::fabs(value) >= halfway ? INFINITY : FLT_MAX;
    return value < 0 ? -magnitude : magnitude;
  }
  return static_cast<float>(value);
}

// Converts `count` stored values of a floating dtype to float.
void decode(Encoding encoding, const uint8_t* raw, size_t count, float* out) {
  if (count == 0) return;  // `out` may be null
  switch (encoding) {
    case Encoding::kF32:
      if (hostIsLittleEndian()) {
        std::memcpy(out, raw, count * 4);
      } else {
        for (size_t i = 0; i < count; ++i) {
          uint32_t bits = static_cast<uint32_t>(loadLittleEndian(raw + i * 4, 4));
          std::memcpy(&out[i], &bits, 4);
        }
      }
      break;
    case Encoding::kF64:
      for (size_t i = 0; i < count; ++i) {
        uint64_t bits = loadLittleEndian(raw + i * 8, 8);
        double value;
        std::memcpy(&value, &bits, 8);
        out[i] = doubleToFloat(value);
      }
      break;
    case Encoding::kF16:
      for (size_t i = 0; i < count; ++i)
        out[i] = halfToFloat(static_cast<uint16_t>(loadLittleEndian(raw + i * 2, 2)));
      break;
    case Encoding::kBF16:  // the top half of an F32
      for (size_t i = 0; i < count; ++i) {
        uint32_t bits = static_cast<uint32_t>(loadLittleEndian(raw + i * 2, 2)) << 16;
        std::memcpy(&out[i], &bits, 4);
      }
      break;
    case Encoding::kNotFloat:
      break;
  }
}

std::string systemReason(int error) {
  return std::system_category().message(error);
}

// A JSON value as a message shows it: short, and always valid UTF-8.
std::string quoteForMessage(const std::string& text) {
  std::string quoted = json(text).dump(-1, ' ', false, json::error_handler_t::replace);
  if (quoted.size() > 40) {
    // Cut before a UTF-8 continuation byte, never inside a character.
    size_t cut = 36;
    while (cut > 1 && (static_cast<unsigned char>(quoted[cut]) & 0xC0) == 0x80) --cut;
    quoted = quoted.substr(0, cut) + "...\"";
  }
  return quoted;
}

// One tensor's header entry, as parsed and then checked.
struct Entry {
  std::string name;
  std::string dtypeName;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
  const Dtype* dtype = nullptr;
  uint64_t elements = 0;
};

struct Header {
  std::vector<Entry> entries;  // in header order
  std::map<std::string, std::string> metadata;
};

// Stops at the first syntax error and keeps its message: a first pass, so
// that a header that is not JSON is reported as such before any field in it.
struct SyntaxChecker {
  std::string error;

  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) { return true; }
  bool string(json::string_t&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) { return true; }
  bool key(json::string_t&) { return true; }
  bool end_object() { return true; }
  bool start_array(std::size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& problem) {
    // Drop nlohmann's "[json.exception.parse_error.101] " tag.
    error = problem.what();
    size_t tagEnd = error.find("] ");
    if (tagEnd != std::string::npos) error.erase(0, tagEnd + 2);
    // The message quotes the bytes last read, which may not be UTF-8.
    for (char& c : error)
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    return false;
  }
};

// Builds a Header straight from the parser's events (nlohmann's SAX
// interface) rather than from a json DOM: every field is checked as it
// arrives, memory stays proportional to what the header names, and nesting
// of any depth is skipped without recursion.
class HeaderReader final : public nlohmann::json_sax<json> {
 public:
  explicit HeaderReader(Header& header) : header_(header) {}
  const std::string& error() const { return error_; }

  bool null() override { return value(Kind::kNull, 0, nullptr, "null"); }
  bool boolean(bool b) override { return value(Kind::kOther, 0, nullptr, b ? "true" : "false"); }
  bool number_integer(number_integer_t n) override {
    // The parser reports only negative integers (and "-0") here.
    if (n == 0) return value(Kind::kUnsigned, 0, nullptr, "0");
    return value(Kind::kOther, 0, nullptr, std::to_string(n));
  }
  bool number_unsigned(number_unsigned_t n) override {
    return value(Kind::kUnsigned, n, nullptr, std::to_string(n));
  }
  bool number_float(number_float_t, const string_t& token) override {
    return value(Kind::kOther, 0, nullptr, token);
  }
  bool string(string_t& text) override {
    return value(Kind::kString, 0, &text, quoteForMessage(text));
  }
  bool binary(binary_t&) override { return value(Kind::kOther, 0, nullptr, "binary"); }
  bool start_object(std::size_t) override { return value(Kind::kObject, 0, nullptr, "{...}"); }
  bool start_array(std::size_t) override { return value(Kind::kArray, 0, nullptr, "[...]"); }
  bool key(string_t& name) override;
  bool end_object() override;
  bool end_array() override;
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& problem) override {
    return fail(std::string("header is not valid JSON: ") + problem.what());  // caught before
  }

 private:
  enum class Kind { kObject, kArray, kString, kUnsigned, kNull, kOther };
  enum class Where { kTop, kHeader, kEntry, kMetadata, kShape, kOffsets, kSkipping, kAfter };
  static constexpr int kDtypeSeen = 1, kShapeSeen = 2, kOffsetsSeen = 4;

  bool value(Kind kind, uint64_t number, string_t* text, const std::string& shown);
  bool entryField(Kind kind, string_t* text);
  bool leaveSkipped() {
    if (--skipDepth_ == 0) where_ = Where::kEntry;
    return true;
  }
  bool fail(const std::string& message) {
    if (error_.empty()) error_ = message;
    return false;
  }
  bool failTensor(const std::string& message) {
    return fail("tensor '" + header_.entries.back().name + "': " + message);
  }

  Header& header_;
  std::string error_;
  Where where_ = Where::kTop;
  std::string key_;    // the current top-level or metadata key
  std::string field_;  // the current field of a tensor entry
  int fieldsSeen_ = 0;
  int offsetCount_ = 0;
  int skipDepth_ = 0;
  std::unordered_set<std::string> names_;
};

bool HeaderReader::value(Kind kind, uint64_t number, string_t* text, const std::string& shown) {
  switch (where_) {
    case Where::kTop:
      if (kind != Kind::kObject) return fail("header is not a JSON object");
      where_ = Where::kHeader;
      return true;
    case Where::kHeader:
      if (key_ == "__metadata__") {
        if (kind == Kind::kObject) {
          where_ = Where::kMetadata;
          return true;
        }
        // The reference writes null for "no metadata".
        if (kind == Kind::kNull) return true;
        return fail("__metadata__ is not an object mapping strings to strings");
      }
      header_.entries.emplace_back();
      header_.entries.back().name = key_;
      if (kind != Kind::kObject)
        return failTensor("entry is not an object with dtype, shape and data_offsets");
      where_ = Where::kEntry;
      fieldsSeen_ = 0;
      return true;
    case Where::kEntry:
      return entryField(kind, text);
    case Where::kMetadata:
      if (kind != Kind::kString)
        return fail("__metadata__ value of '" + key_ + "' is not a string: " + shown);
      header_.metadata.emplace(key_, std::move(*text));
      return true;
    case Where::kShape:
      if (kind != Kind::kUnsigned)
        return failTensor("shape dimension " + shown + " is not a non-negative integer");
      if (number > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return failTensor("shape dimension " + shown + " overflows a 64-bit integer");
      header_.entries.back().shape.push_back(static_cast<int64_t>(number));
      return true;
    case Where::kOffsets:
      if (kind != Kind::kUnsigned || offsetCount_ == 2)
        return failTensor("data_offsets is not a pair of non-negative integers");
      (offsetCount_++ == 0 ? header_.entries.back().begin : header_.entries.back().end) = number;
      return true;
    case Where::kSkipping:
      if (kind == Kind::kObject || kind == Kind::kArray) ++skipDepth_;
      return true;
    case Where::kAfter:
      break;
  }
  return fail("header has data after its object");  // the parser stops first
}

bool HeaderReader::entryField(Kind kind, string_t* text) {
  Entry& entry = header_.entries.back();
  if (field_ == "dtype") {
    if (kind != Kind::kString) return failTensor("dtype is not a string");
    entry.dtypeName = std::move(*text);
  } else if (field_ == "shape") {
    if (kind != Kind::kArray) return failTensor("shape is not an array");
    where_ = Where::kShape;
  } else if (field_ == "data_offsets") {
    if (kind != Kind::kArray)
      return failTensor("data_offsets is not a pair of non-negative integers");
    where_ = Where::kOffsets;
    offsetCount_ = 0;
  } else if (kind == Kind::kObject || kind == Kind::kArray) {
    // Other fields are passed over, as the reference does.
    where_ = Where::kSkipping;
    skipDepth_ = 1;
  }
  return true;
}

bool HeaderReader::key(string_t& name) {
  switch (where_) {
    case Where::kHeader:
      if (!names_.insert(name).second) {
        if (name == "__metadata__") return fail("__metadata__ appears twice in the header");
        return fail("tensor '" + name + "' appears twice in the header");
      }
      key_ = name;
      return true;
    case Where::kEntry: {
      int bit = name == "dtype"          ? kDtypeSeen
                : name == "shape"        ? kShapeSeen
                : name == "data_offsets" ? kOffsetsSeen
                                         : 0;
      if (fieldsSeen_ & bit) return failTensor("field '" + name + "' appears twice");
      fieldsSeen_ |= bit;
      field_ = name;
      return true;
    }
    case Where::kMetadata:
      if (header_.metadata.count(name))
        return fail("__metadata__ key '" + name + "' appears twice");
      key_ = name;
      return true;
    default:
      return true;
  }
}

bool HeaderReader::end_object() {
  switch (where_) {
    case Where::kSkipping:
      return leaveSkipped();
    case Where::kEntry:
      if (!(fieldsSeen_ & kDtypeSeen)) return failTensor("missing field 'dtype'");
      if (!(fieldsSeen_ & kShapeSeen)) return failTensor("missing field 'shape'");
      if (!(fieldsSeen_ & kOffsetsSeen)) return failTensor("missing field 'data_offsets'");
      where_ = Where::kHeader;
      return true;
    case Where::kMetadata:
      where_ = Where::kHeader;
      return true;
    default:
      where_ = Where::kAfter;
      return true;
  }
}

bool HeaderReader::end_array() {
  switch (where_) {
    case Where::kSkipping:
      return leaveSkipped();
    case Where::kOffsets:
      if (offsetCount_ != 2)
        return failTensor("data_offsets is not a pair of non-negative integers");
      where_ = Where::kEntry;
      return true;
    default:  // the end of a shape
      where_ = Where::kEntry;
      return true;
  }
}

// Parses and checks the header against a data section of `dataSize` bytes:
// dtypes, element counts, byte sizes, and that the tensors cover the data
// exactly once, as the reference requires.
Header parseHeader(const char* text, size_t length, uint64_t dataSize, const std::string& source) {
  auto failure = [&](const std::string& message) { return Error("'" + source + "': " + message); };
  // nlohmann skips a byte order mark; the format, like JSON, has none.
  if (length >= 3 && std::memcmp(text, "\xEF\xBB\xBF", 3) == 0)
    throw failure("header is not valid JSON: it starts with a byte order mark");
  SyntaxChecker syntax;
  if (!json::sax_parse(text, text + length, &syntax))
    throw failure("header is not valid JSON: " + syntax.error);

  Header header;
  HeaderReader reader(header);
  bool parsed = json::sax_parse(text, text + length, &reader);
  if (!parsed || !reader.error().empty())
    throw failure(reader.error().empty() ? "header is not valid JSON" : reader.error());

  std::vector<const Entry*> byOffset;
  byOffset.reserve(header.entries.size());
  for (Entry& entry : header.entries) {
    auto tensorFailure = [&](const std::string& message) {
      return failure("tensor '" + entry.name + "': " + message);
    };
    entry.dtype = findDtype(entry.dtypeName);
    if (!entry.dtype)
      throw tensorFailure("dtype " + quoteForMessage(entry.dtypeName) +
                          " is not supported, expected F32 (F16, BF16, F64 and integer "
                          "dtypes are also read)");
    // Kept within int64_t so that Tensor::elements() agrees.
    const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    uint64_t elements = 1;
    for (int64_t extent : entry.shape) {
      uint64_t e = static_cast<uint64_t>(extent);
      if (e != 0 && elements > limit / e)
        throw tensorFailure("shape " + shapeString(entry.shape) +
                            " has more elements than a 64-bit count holds");
      elements *= e;
    }
    if (elements > limit / entry.dtype->size)
      throw tensorFailure("shape " + shapeString(entry.shape) + " of " + entry.dtypeName +
                          " has more bytes than a 64-bit count holds");
    entry.elements = elements;
    std::string offsets =
        "[" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
    if (entry.begin > entry.end)
      throw tensorFailure("data_offsets " + offsets + " are reversed (begin > end)");
    if (entry.end > dataSize)
      throw tensorFailure("data_offsets " + offsets + " end past the end of the data (" +
                          std::to_string(dataSize) + " bytes; is the file truncated?)");
    uint64_t needed = elements * entry.dtype->size;
    if (entry.end - entry.begin != needed)
      throw tensorFailure("data_offsets " + offsets + " hold " +
                          std::to_string(entry.end - entry.begin) + " bytes but shape " +
                          shapeString(entry.shape) + " of " + entry.dtypeName + " needs " +
                          std::to_string(needed));
    byOffset.push_back(&entry);
  }

  // Every byte of the data belongs to exactly one tensor.
  std::sort(byOffset.begin(), byOffset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* entry : byOffset) {
    if (entry->begin < covered)
      throw failure("tensor '" + entry->name + "' overlaps tensor '" + previous->name +
                    "' in the data");
    if (entry->begin > covered)
      throw failure("bytes [" + std::to_string(covered) + ", " + std::to_string(entry->begin) +
                    ") of the data belong to no tensor (before tensor '" + entry->name + "')");
    covered = entry->end;
    previous = entry;
  }
  if (covered != dataSize)
    throw failure("the last " + std::to_string(dataSize - covered) +
                  " bytes of the data belong to no tensor");
  return header;
}

// Checks the 8-byte prefix of a file of `fileSize` bytes and returns the
// header's length.
uint64_t headerLength(const uint8_t* prefix, uint64_t fileSize, const std::string& source) {
  uint64_t length = loadLittleEndian(prefix, 8);
  if (length > kMaxHeaderBytes)
    throw Error("'" + source + "': header length " + std::to_string(length) +
                " exceeds the format's limit of " + std::to_string(kMaxHeaderBytes) +
                " bytes (not a safetensors file?)");
  if (length > fileSize - 8)
    throw Error("'" + source + "': header length " + std::to_string(length) +
                " runs past the end of the file (" + std::to_string(fileSize) + " bytes)");
  return length;
}

Error tooShort(uint64_t size, const std::string& source) {
  return Error("'" + source + "': not a safetensors file: " + std::to_string(size) +
               " bytes, too short for the 8-byte header length");
}

Tensor tensorOf(Entry& entry) {
  Tensor tensor;
  tensor.name = std::move(entry.name);
  tensor.dtype = std::move(entry.dtypeName);
  tensor.shape = std::move(entry.shape);
  return tensor;
}

void sortByName(std::vector<Tensor>& tensors) {
  std::sort(tensors.begin(), tensors.end(),
            [](const Tensor& a, const Tensor& b) { return a.name < b.name; });
}

// Reads exactly `count` bytes at `offset` of an open file.
void readAt(int fd, uint64_t offset, void* destination, uint64_t count, const std::string& path) {
  auto* out = static_cast<char*>(destination);
  while (count > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(count, 1u << 30));
    ssize_t got = ::pread(fd, out, chunk, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read '" + path + "': " + systemReason(errno));
    }
    if (got == 0)
      throw Error("'" + path + "': the file ended early (did it change while being read?)");
    out += got;
    offset += static_cast<uint64_t>(got);
    count -= static_cast<uint64_t>(got);
  }
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The tensors of a File in the order they are stored, with the header that
// describes them (padded), checked for what the reader would refuse.
struct Layout {
  std::string header;
  std::vector<const Tensor*> order;
  uint64_t dataBytes = 0;
};

std::string jsonText(const std::string& text, const std::string& what) {
  try {
    return json(text).dump();
  } catch (const json::exception&) {
    throw Error(what + " is not valid UTF-8");
  }
}

Layout layoutOf(const File& file) {
  Layout layout;
  for (const Tensor& tensor : file.tensors) layout.order.push_back(&tensor);
  std::sort(layout.order.begin(), layout.order.end(),
            [](const Tensor* a, const Tensor* b) { return a->name < b->name; });

  std::string& header = layout.header;
  header = "{";
  if (!file.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : file.metadata) {
      if (!first) header += ",";
      first = false;
      header += jsonText(key, "metadata key " + quoteForMessage(key)) + ":" +
                jsonText(value, "metadata value of " + quoteForMessage(key));
    }
    header += "}";
  }
  for (size_t i = 0; i < layout.order.size(); ++i) {
    const Tensor& tensor = *layout.order[i];
    if (tensor.name == "__metadata__")
      throw Error("a tensor cannot be named '__metadata__' (the header's metadata key)");
    if (i > 0 && layout.order[i - 1]->name == tensor.name)
      throw Error("tensor '" + tensor.name + "' appears twice");
    int64_t elements = tensor.elements();
    if (static_cast<uint64_t>(elements) != tensor.data.size())
      throw Error("tensor '" + tensor.name + "' has " + std::to_string(tensor.data.size()) +
                  " values for shape " + shapeString(tensor.shape));
    uint64_t bytes = tensor.data.size() * 4;
    if (header.size() > 1) header += ",";
    header += jsonText(tensor.name, "tensor name " + quoteForMessage(tensor.name));
    header += ":{\"dtype\":\"F32\",\"shape\":[";
    for (size_t d = 0; d < tensor.shape.size(); ++d)
      header += (d ? "," : "") + std::to_string(tensor.shape[d]);
    header += "],\"data_offsets\":[" + std::to_string(layout.dataBytes) + "," +
              std::to_string(layout.dataBytes + bytes) + "]}";
    layout.dataBytes += bytes;
  }
  header += "}";
  // The reference pads with spaces so that the data starts 8-byte aligned.
  header.append((8 - header.size() % 8) % 8, ' ');
  return layout;
}

// Sends the file's bytes, in order, to `put(const char*, size_t)`.
template <typename Put>
void emit(const Layout& layout, Put&& put) {
  char length[8];
  uint64_t headerSize = layout.header.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((headerSize >> (8 * i)) & 0xFF);
  put(length, 8);
  put(layout.header.data(), layout.header.size());
  const bool direct = hostIsLittleEndian();
  std::vector<char> swapped;
  for (const Tensor* tensor : layout.order) {
    if (direct) {
      put(reinterpret_cast<const char*>(tensor->data.data()), tensor->data.size() * 4);
      continue;
    }
    swapped.resize(tensor->data.size() * 4);
    for (size_t i = 0; i < tensor->data.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &tensor->data[i], 4);
      for (int b = 0; b < 4; ++b) swapped[i * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
    }
    put(swapped.data(), swapped.size());
  }
}

}  // namespace

bool Tensor::isFloat() const {
  const Dtype* type = findDtype(dtype);
  return type && type->encoding != Encoding::kNotFloat;
}

int64_t Tensor::elements() const {
  int64_t count = 1;
  for (int64_t extent : shape) {
    if (extent < 0)
      throw Error("tensor '" + name + "' has a negative dimension in shape " + shapeString(shape));
    if (extent != 0 && count > std::numeric_limits<int64_t>::max() / extent)
      throw Error("tensor '" + name + "': shape " + shapeString(shape) + " has too many elements");
    count *= extent;
  }
  return count;
}

const Tensor* File::find(const std::string& name) const {
  for (const Tensor& tensor : tensors)
    if (tensor.name == name) return &tensor;
  return nullptr;
}

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

File parse(const uint8_t* bytes, size_t size, const std::string& source) {
  if (size < 8) throw tooShort(size, source);
  uint64_t length = headerLength(bytes, size, source);
  const uint8_t* data = bytes + 8 + length;
  Header header =
      parseHeader(reinterpret_cast<const char*>(bytes + 8), length, size - 8 - length, source);
  File file;
  file.metadata = std::move(header.metadata);
  file.tensors.reserve(header.entries.size());
  for (Entry& entry : header.entries) {
    file.tensors.push_back(tensorOf(entry));
    if (entry.dtype->encoding == Encoding::kNotFloat) continue;
    file.tensors.back().data.resize(entry.elements);
    decode(entry.dtype->encoding, data + entry.begin, entry.elements,
           file.tensors.back().data.data());
  }
  sortByName(file.tensors);
  return file;
}

File read(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then
  // refuses anything but a regular file.
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) throw Error("cannot open '" + path + "': " + systemReason(errno));
  struct stat status;
  if (::fstat(fd.get(), &status) != 0)
    throw Error("cannot read '" + path + "': " + systemReason(errno));
  if (S_ISDIR(status.st_mode)) throw Error("cannot read '" + path + "': it is a directory");
  if (!S_ISREG(status.st_mode)) throw Error("cannot read '" + path + "': not a regular file");

  uint64_t size = static_cast<uint64_t>(status.st_size);
  if (size < 8) throw tooShort(size, path);
  uint8_t prefix[8];
  readAt(fd.get(), 0, prefix, 8, path);
  uint64_t length = headerLength(prefix, size, path);
  std::string headerText(length, '\0');
  readAt(fd.get(), 8, headerText.data(), length, path);
  Header header = parseHeader(headerText.data(), length, size - 8 - length, path);
  headerText = std::string();

  File file;
  file.metadata = std::move(header.metadata);
  file.tensors.reserve(header.entries.size());
  std::vector<uint8_t> raw;
  const uint64_t dataStart = 8 + length;
  for (Entry& entry : header.entries) {
    file.tensors.push_back(tensorOf(entry));
    Encoding encoding = entry.dtype->encoding;
    if (encoding == Encoding::kNotFloat) continue;
    std::vector<float>& values = file.tensors.back().data;
    values.resize(entry.elements);
    uint64_t bytes = entry.end - entry.begin;
    if (encoding == Encoding::kF32 && hostIsLittleEndian()) {
      readAt(fd.get(), dataStart + entry.begin, values.data(), bytes, path);
    } else {
      raw.resize(bytes);
      readAt(fd.get(), dataStart + entry.begin, raw.data(), bytes, path);
      decode(encoding, raw.data(), entry.elements, values.data());
    }
  }
  sortByName(file.tensors);
  return file;
}

std::string serialize(const File& file) {
  Layout layout = layoutOf(file);
  std::string out;
  out.reserve(8 + layout.header.size() + layout.dataBytes);
  emit(layout, [&](const char* bytes, size_t count) { out.append(bytes, count); });
  return out;
}

void write(const std::string& path, const File& file) {
  Layout layout;
  try {
    layout = layoutOf(file);
  } catch (const Error& e) {
    throw Error("cannot write '" + path + "': " + e.what());
  }
  writeFileAtomically(path, [&](std::ostream& out) {
    emit(layout, [&](const char* bytes, size_t count) {
      out.write(bytes, static_cast<std::streamsize>(count));
    });
  });
}

void check(const File& file, const std::vector<ExpectedTensor>& expected, const std::string& source,
           const std::vector<std::string>& ignoredPrefixes,
           const std::vector<std::string>& ignoredSuffixes) {
  auto failure = [&](const std::string& message) { return Error("'" + source + "': " + message); };
  std::unordered_map<std::string, const Tensor*> byName;
  for (const Tensor& tensor : file.tensors) byName.emplace(tensor.name, &tensor);
  std::unordered_set<std::string> expectedNames;
  for (const ExpectedTensor& want : expected) {
    expectedNames.insert(want.name);
    auto found = byName.find(want.name);
    if (found == byName.end()) throw failure("missing tensor '" + want.name + "'");
    const Tensor& tensor = *found->second;
    if (tensor.shape != want.shape)
      throw failure("tensor '" + want.name + "' has shape " + shapeString(tensor.shape) +
                    ", expected " + shapeString(want.shape));
    if (!tensor.isFloat())
      throw failure("tensor '" + want.name + "' has dtype " + tensor.dtype + ", expected F32");
  }
  auto startsWith = [](const std::string& text, const std::string& prefix) {
    return text.compare(0, prefix.size(), prefix) == 0;
  };
  auto endsWith = [](const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() &&
           text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const Tensor& tensor : file.tensors) {
    if (expectedNames.count(tensor.name)) continue;
    bool ignored =
        std::any_of(ignoredPrefixes.begin(), ignoredPrefixes.end(),
                    [&](const std::string& prefix) { return startsWith(tensor.name, prefix); }) ||
        std::any_of(ignoredSuffixes.begin(), ignoredSuffixes.end(),
                    [&](const std::string& suffix) { return endsWith(tensor.name, suffix); });
    if (ignored) continue;
    if (startsWith(tensor.name, kOptimizerPrefix))
      throw failure("unexpected tensor '" + tensor.name +
                    "' (optimizer state from a training checkpoint, not accepted here)");
    throw failure("unexpected tensor '" + tensor.name + "' (the network has no such parameter)");
  }
}

}  // namespace cnnc::safetensors
