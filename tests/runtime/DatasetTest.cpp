// Datasets: IDX files (plain and gzipped) and CIFAR-10 batches written here
// byte by byte read back as those bytes / 255; every malformed class is an
// error naming the file and the problem; the installed Fashion-MNIST and
// MNIST have their published counts; checkDatasetFits accepts and refuses.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <zlib.h>

#include "Dataset.h"
#include "Error.h"
#include "TestFiles.h"

using Catch::Matchers::Contains;
using cnnc::Dataset;
using cnnc::DatasetSplit;
using cnnc::Error;
using cnnc::testing::ScratchDirectory;
using cnnc::testing::writeBytes;

namespace {

std::string bigEndian32(uint32_t value) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * (3 - i))) & 0xFF);
  return out;
}

std::string idxImages(uint32_t count, uint32_t rows, uint32_t cols, const std::string& pixels) {
  return bigEndian32(0x00000803) + bigEndian32(count) + bigEndian32(rows) + bigEndian32(cols) +
         pixels;
}

std::string idxLabels(const std::string& labels) {
  return bigEndian32(0x00000801) + bigEndian32(static_cast<uint32_t>(labels.size())) + labels;
}

// Deterministic bytes covering the whole range, 0 and 255 included.
std::string patternBytes(size_t count, unsigned seed) {
  std::string out(count, '\0');
  uint32_t state = seed * 2654435761u + 1;
  for (size_t i = 0; i < count; ++i) {
    state = state * 1664525u + 1013904223u;
    out[i] = static_cast<char>(i % 97 == 0 ? 255 : i % 89 == 0 ? 0 : state >> 24);
  }
  return out;
}

// A gzip stream made with zlib's deflate (the reader uses gzread).
std::string gzipped(const std::string& bytes) {
  z_stream stream{};
  REQUIRE(deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&stream, bytes.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&stream, Z_FINISH) == Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// Sets (or with nullopt unsets) an environment variable for a scope.
class EnvironmentVariable {
 public:
  EnvironmentVariable(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~EnvironmentVariable() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string errorOf(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no cnnc::Error was thrown");
  return {};
}

void checkPixels(const Dataset& data, const std::string& pixels) {
  REQUIRE(data.images.size() == pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    float expected = static_cast<float>(static_cast<unsigned char>(pixels[i])) / 255.0f;
    if (data.images[i] != expected)
      FAIL("pixel " << i << ": " << data.images[i] << " != " << expected);
  }
}

// A directory holding a small IDX dataset: `train` and `test` examples of
// rows x cols, labels i % 10; the images gzipped when `gzip`.
void writeIdxSet(const std::filesystem::path& directory, uint32_t train, uint32_t test, bool gzip) {
  std::filesystem::create_directories(directory);
  auto write = [&](const std::string& name, const std::string& bytes) {
    writeBytes((directory / (gzip ? name + ".gz" : name)).string(), gzip ? gzipped(bytes) : bytes);
  };
  for (auto [set, count] : {std::pair<std::string, uint32_t>{"train", train}, {"t10k", test}}) {
    std::string labels;
    for (uint32_t i = 0; i < count; ++i) labels += static_cast<char>(i % 10);
    write(set + "-images-idx3-ubyte", idxImages(count, 28, 28, patternBytes(count * 784, count)));
    writeBytes((directory / (set + "-labels-idx1-ubyte")).string(), idxLabels(labels));
  }
}

std::string cifarRecords(int count, int firstLabel) {
  std::string out;
  for (int r = 0; r < count; ++r) {
    out += static_cast<char>((firstLabel + r) % 10);
    out += patternBytes(3072, static_cast<unsigned>(firstLabel * 100 + r));
  }
  return out;
}

}  // namespace

TEST_CASE("dataset: a plain IDX pair reads back as the bytes written / 255", "[dataset]") {
  ScratchDirectory scratch;
  // 5 images of 3 rows by 4 columns: rows and columns are not confused.
  std::string pixels = patternBytes(5 * 3 * 4, 1);
  writeBytes(scratch.file("images"), idxImages(5, 3, 4, pixels));
  writeBytes(scratch.file("labels"), idxLabels(std::string("\x00\x09\x03\x03\x07", 5)));
  Dataset data = cnnc::readIdx(scratch.file("images"), scratch.file("labels"));
  CHECK(data.count == 5);
  CHECK(data.channels == 1);
  CHECK(data.height == 3);
  CHECK(data.width == 4);
  CHECK(data.classes == 10);
  CHECK(data.exampleSize() == 12);
  CHECK(data.labels == std::vector<int32_t>{0, 9, 3, 3, 7});
  checkPixels(data, pixels);
  CHECK(data.image(2)[0] == static_cast<float>(static_cast<unsigned char>(pixels[24])) / 255.0f);
  CHECK(data.name == scratch.file("images"));
}

TEST_CASE("dataset: gzipped IDX files are detected by their magic bytes, not their names",
          "[dataset]") {
  ScratchDirectory scratch;
  // Large enough to span several of the reader's chunks.
  const uint32_t count = 3000;
  std::string pixels = patternBytes(count * 28 * 28, 2);
  std::string labels;
  for (uint32_t i = 0; i < count; ++i) labels += static_cast<char>((i * 7) % 10);
  writeBytes(scratch.file("images.bin"), gzipped(idxImages(count, 28, 28, pixels)));
  writeBytes(scratch.file("labels.gz"), gzipped(idxLabels(labels)));
  Dataset data = cnnc::readIdx(scratch.file("images.bin"), scratch.file("labels.gz"));
  CHECK(data.count == count);
  CHECK(data.height == 28);
  CHECK(data.width == 28);
  checkPixels(data, pixels);
  for (uint32_t i = 0; i < count; ++i) REQUIRE(data.labels[i] == int32_t((i * 7) % 10));

  // An uncompressed file named .gz is read as it is.
  writeBytes(scratch.file("plain.gz"), idxLabels(labels));
  CHECK(cnnc::readIdx(scratch.file("images.bin"), scratch.file("plain.gz")).labels == data.labels);
}

TEST_CASE("dataset: malformed IDX files are errors naming the file and the problem", "[dataset]") {
  ScratchDirectory scratch;
  const std::string images = scratch.file("images-idx3");
  const std::string labels = scratch.file("labels-idx1");
  const std::string goodPixels = patternBytes(4 * 2 * 2, 3);
  const std::string goodLabels = idxLabels(std::string("\x01\x02\x03\x04", 4));
  writeBytes(labels, goodLabels);
  auto imagesError = [&](const std::string& bytes) {
    writeBytes(images, bytes);
    return errorOf([&] { cnnc::readIdx(images, labels); });
  };
  auto labelsError = [&](const std::string& bytes) {
    writeBytes(images, idxImages(4, 2, 2, goodPixels));
    writeBytes(labels, bytes);
    std::string message = errorOf([&] { cnnc::readIdx(images, labels); });
    writeBytes(labels, goodLabels);
    return message;
  };

  SECTION("bad magic") {
    std::string message = imagesError(bigEndian32(0x12345678) + std::string(12, '\0'));
    CHECK_THAT(message, Contains(images) && Contains("bad magic number 0x12345678") &&
                            Contains("expected 0x00000803"));
    message = labelsError("PK\x03\x04 not an idx file");
    CHECK_THAT(message, Contains(labels) && Contains("bad magic") && Contains("0x00000801"));
  }
  SECTION("elements that are not bytes") {
    std::string message = imagesError(bigEndian32(0x00000D03) + std::string(12, '\0'));
    CHECK_THAT(message,
               Contains(images) && Contains("32-bit float") && Contains("expected unsigned bytes"));
  }
  SECTION("wrong number of dimensions") {
    std::string message =
        imagesError(bigEndian32(0x00000802) + bigEndian32(4) + bigEndian32(4) + goodPixels);
    CHECK_THAT(message, Contains(images) && Contains("2 dimensions, expected 3"));
    // The two files swapped: the labels' magic where images belong.
    message = imagesError(goodLabels);
    CHECK_THAT(message,
               Contains(images) && Contains("1 dimension, expected 3") && Contains("labels file"));
    message = labelsError(idxImages(4, 2, 2, goodPixels));
    CHECK_THAT(message, Contains(labels) && Contains("3 dimensions, expected 1"));
  }
  SECTION("zero and absurd dimensions") {
    CHECK_THAT(imagesError(idxImages(4, 0, 2, "")), Contains(images) && Contains("(rows) is 0"));
    CHECK_THAT(imagesError(idxImages(0, 2, 2, "")), Contains(images) && Contains("(images) is 0"));
    CHECK_THAT(imagesError(idxImages(4, 2, 100000, goodPixels)),
               Contains(images) && Contains("absurd dimension 2 (columns) of 100000"));
    CHECK_THAT(imagesError(idxImages(0x80000000u, 2, 2, goodPixels)),
               Contains(images) && Contains("absurd dimension 0 (images)"));
  }
  SECTION("too short for a header") {
    CHECK_THAT(imagesError(""),
               Contains(images) && Contains("too short for an IDX header (0 bytes)"));
    CHECK_THAT(imagesError(bigEndian32(0x00000803) + bigEndian32(4) + std::string(2, '\0')),
               Contains(images) && Contains("truncated IDX header: expected 16 bytes, found 10"));
  }
  SECTION("truncated data") {
    std::string message = imagesError(idxImages(4, 2, 2, goodPixels.substr(0, 15)));
    CHECK_THAT(message, Contains(images) && Contains("truncated: expected 16 bytes of pixels") &&
                            Contains("found 15"));
    message = imagesError(gzipped(idxImages(4, 2, 2, goodPixels.substr(0, 9))));
    CHECK_THAT(message, Contains(images) && Contains("expected 16 bytes") && Contains("found 9"));
    // Headers claiming two billion examples over a few bytes are refused,
    // plain or gzipped, without allocating for the claim.
    message = imagesError(idxImages(0x7FFFFFFF, 1, 1, goodPixels));
    CHECK_THAT(message, Contains(images) && Contains("truncated") && Contains("found 16"));
    std::string lyingLabels = bigEndian32(0x00000801) + bigEndian32(0x7FFFFFFF) + "\x01\x02";
    writeBytes(images, gzipped(idxImages(0x7FFFFFFF, 1, 1, goodPixels)));
    for (const std::string& bytes : {lyingLabels, gzipped(lyingLabels)}) {
      writeBytes(labels, bytes);
      message = errorOf([&] { cnnc::readIdx(images, labels); });
      CHECK_THAT(message, Contains(labels) && Contains("truncated") && Contains("found 2"));
    }
    writeBytes(labels, goodLabels);
    CHECK_THAT(imagesError(idxImages(0x7FFFFFFF, 28, 28, goodPixels)),
               Contains(images) && Contains("absurd dimensions"));
    message = labelsError(idxLabels("\x01\x02\x03\x04").substr(0, 10));
    CHECK_THAT(message,
               Contains(labels) && Contains("expected 4 bytes of labels") && Contains("found 2"));
  }
  SECTION("trailing bytes") {
    std::string message = imagesError(idxImages(4, 2, 2, goodPixels + "xyz"));
    CHECK_THAT(message, Contains(images) && Contains("3 trailing bytes after the 16 bytes"));
    message = imagesError(gzipped(idxImages(4, 2, 2, goodPixels + "x")));
    CHECK_THAT(message, Contains(images) && Contains("1 trailing byte after"));
    message = labelsError(goodLabels + "\x05\x05");
    CHECK_THAT(message, Contains(labels) && Contains("2 trailing bytes"));
  }
  SECTION("image and label counts that disagree") {
    std::string message = imagesError(idxImages(3, 2, 2, goodPixels.substr(0, 12)));
    CHECK_THAT(message, Contains(images) && Contains(labels) && Contains("3 images") &&
                            Contains("4 labels"));
  }
  SECTION("a label that is not below 10 classes") {
    std::string message = labelsError(idxLabels(std::string("\x01\x02\x0A\x04", 4)));
    CHECK_THAT(message, Contains(labels) && Contains("label 10 at index 2 is not below 10"));
  }
  SECTION("a corrupt gzip stream") {
    std::string stream = gzipped(idxImages(4, 2, 2, goodPixels));
    // Gzip's magic bytes and then nothing gzip can read.
    std::string message =
        imagesError(std::string("\x1f\x8b\x08\x00", 4) + "garbage that is not deflate data");
    CHECK_THAT(message, Contains(images) && Contains("gzip"));
    // The stream cut short.
    message = imagesError(stream.substr(0, stream.size() - 12));
    CHECK_THAT(message, Contains(images) && Contains("gzip"));
    // A byte of the compressed data or its checksum changed.
    std::string damaged = stream;
    damaged[damaged.size() - 6] = static_cast<char>(damaged[damaged.size() - 6] ^ 0x55);
    message = imagesError(damaged);
    CHECK_THAT(message, Contains(images) && Contains("gzip"));
  }
  SECTION("a file that is not there") {
    std::string missing = scratch.file("nowhere");
    std::string message = errorOf([&] { cnnc::readIdx(missing, labels); });
    CHECK_THAT(message, Contains(missing) && Contains("cannot open"));
  }
}

TEST_CASE("dataset: CIFAR-10 batches read as channel-major 3x32x32 images", "[dataset]") {
  ScratchDirectory scratch;
  std::string first = cifarRecords(3, 0), second = cifarRecords(2, 7);
  writeBytes(scratch.file("a.bin"), first);
  writeBytes(scratch.file("b.bin"), gzipped(second));
  Dataset data = cnnc::readCifar10({scratch.file("a.bin"), scratch.file("b.bin")});
  CHECK(data.count == 5);
  CHECK(data.channels == 3);
  CHECK(data.height == 32);
  CHECK(data.width == 32);
  CHECK(data.labels == std::vector<int32_t>{0, 1, 2, 7, 8});
  std::string records = first + second;
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; y += 7)
        for (int x = 0; x < 32; x += 5) {
          auto byte = static_cast<unsigned char>(records[r * 3073 + 1 + c * 1024 + y * 32 + x]);
          REQUIRE(data.image(r)[(c * 32 + y) * 32 + x] == static_cast<float>(byte) / 255.0f);
        }

  writeBytes(scratch.file("short.bin"), first.substr(0, 3073 * 2 + 100));
  CHECK_THAT(errorOf([&] { cnnc::readCifar10({scratch.file("short.bin")}); }),
             Contains(scratch.file("short.bin")) && Contains("6246 bytes") && Contains("3073"));
  writeBytes(scratch.file("empty.bin"), "");
  CHECK_THAT(errorOf([&] { cnnc::readCifar10({scratch.file("empty.bin")}); }),
             Contains(scratch.file("empty.bin")) && Contains("0 bytes"));
  std::string badLabel = first;
  badLabel[3073] = 10;
  writeBytes(scratch.file("label.bin"), badLabel);
  CHECK_THAT(errorOf([&] { cnnc::readCifar10({scratch.file("label.bin")}); }),
             Contains(scratch.file("label.bin")) && Contains("record 1 has label 10"));
}

TEST_CASE("dataset: loadDataset reads a directory of IDX files or of CIFAR-10 batches",
          "[dataset]") {
  ScratchDirectory scratch;
  SECTION("IDX, gzipped or not") {
    for (bool gzip : {false, true}) {
      std::filesystem::path directory = scratch.path() / (gzip ? "gz" : "plain");
      writeIdxSet(directory, 30, 12, gzip);
      DatasetSplit split = cnnc::loadDataset(directory.string());
      CHECK(split.train.count == 30);
      CHECK(split.test.count == 12);
      CHECK(split.train.height == 28);
      CHECK(split.test.labels[11] == 1);
      CHECK(split.train.name == directory.string() + " (train)");
      CHECK(split.test.name == directory.string() + " (test)");
    }
    std::filesystem::remove(scratch.path() / "plain" / "t10k-labels-idx1-ubyte");
    CHECK_THAT(errorOf([&] { cnnc::loadDataset((scratch.path() / "plain").string()); }),
               Contains("plain") && Contains("no t10k-labels-idx1-ubyte[.gz]"));
  }
  SECTION("CIFAR-10, in the directory or in cifar-10-batches-bin under it") {
    std::filesystem::path folder = scratch.path() / "cifar-10-batches-bin";
    std::filesystem::create_directories(folder);
    for (int b = 1; b <= 5; ++b)
      writeBytes((folder / ("data_batch_" + std::to_string(b) + ".bin")).string(),
                 cifarRecords(2, b));
    writeBytes((folder / "test_batch.bin").string(), cifarRecords(3, 0));
    for (const std::filesystem::path& spec : {folder, scratch.path()}) {
      DatasetSplit split = cnnc::loadDataset(spec.string());
      CHECK(split.train.count == 10);
      CHECK(split.test.count == 3);
      CHECK(split.train.channels == 3);
      CHECK(split.train.labels == std::vector<int32_t>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6});
    }
    std::filesystem::remove(folder / "data_batch_4.bin");
    CHECK_THAT(errorOf([&] { cnnc::loadDataset(folder.string()); }),
               Contains("no '" + (folder / "data_batch_4.bin").string() + "'"));
  }
  SECTION("neither") {
    CHECK_THAT(errorOf([&] { cnnc::loadDataset(scratch.path().string()); }),
               Contains(scratch.path().string()) && Contains("neither") &&
                   Contains("train-images-idx3-ubyte") && Contains("data_batch_1.bin"));
    CHECK_THAT(errorOf([&] { cnnc::loadDataset("no-such-dataset"); }),
               Contains("'no-such-dataset'") && Contains("mnist, fashion-mnist, cifar10"));
  }
}

TEST_CASE("dataset: named datasets are found under CNNC_DATA, or else where they install",
          "[dataset]") {
  ScratchDirectory scratch;
  {
    EnvironmentVariable unset("CNNC_DATA", std::nullopt);
    CHECK(cnnc::dataDirectory("fashion-mnist") == "/usr/share/datasets/fashion-mnist");
    CHECK(cnnc::dataDirectory("mnist") == "/usr/local/share/cnnc/datasets/mnist");
    CHECK(cnnc::dataDirectory("cifar10") == "/usr/local/share/cnnc/datasets/cifar10");
  }
  EnvironmentVariable data("CNNC_DATA", scratch.path().string());
  CHECK(cnnc::dataDirectory("mnist") == (scratch.path() / "mnist").string());
  writeIdxSet(scratch.path() / "mnist", 20, 10, true);
  DatasetSplit split = cnnc::loadDataset("mnist");
  CHECK(split.train.count == 20);
  CHECK(split.train.name == "mnist (train)");
  CHECK(split.test.name == "mnist (test)");

  std::string message = errorOf([] { cnnc::loadDataset("cifar10"); });
  CHECK_THAT(message, Contains("dataset 'cifar10' not found") &&
                          Contains((scratch.path() / "cifar10").string()) &&
                          Contains("data_batch_1.bin") && Contains("CNNC_DATA"));
  std::filesystem::create_directories(scratch.path() / "fashion-mnist");
  message = errorOf([] { cnnc::loadDataset("fashion-mnist"); });
  CHECK_THAT(message, Contains("dataset 'fashion-mnist' not found") &&
                          Contains((scratch.path() / "fashion-mnist").string()) &&
                          Contains("dataset-fashion-mnist (scripts/setup.sh"));
}

TEST_CASE("dataset: the installed Fashion-MNIST has 60000 + 10000 images, 6000 + 1000 a class",
          "[dataset]") {
  EnvironmentVariable unset("CNNC_DATA", std::nullopt);
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist); skipped");
    return;
  }
  DatasetSplit split = cnnc::loadDataset("fashion-mnist");
  CHECK(split.train.name == "fashion-mnist (train)");
  CHECK(split.train.count == 60000);
  CHECK(split.test.count == 10000);
  for (const Dataset* data : {&split.train, &split.test}) {
    CHECK(data->channels == 1);
    CHECK(data->height == 28);
    CHECK(data->width == 28);
    std::array<int64_t, 10> perClass{};
    for (int32_t label : data->labels) ++perClass.at(label);
    for (int64_t count : perClass) CHECK(count == data->count / 10);
  }
  // Published facts about the files: the first labels (ankle boot, T-shirt,
  // ...), the training set's mean pixel, the first image's sum (76247/255,
  // from Python's gzip module).
  CHECK(std::vector<int32_t>(split.train.labels.begin(), split.train.labels.begin() + 5) ==
        std::vector<int32_t>{9, 0, 0, 3, 0});
  CHECK(std::vector<int32_t>(split.test.labels.begin(), split.test.labels.begin() + 5) ==
        std::vector<int32_t>{9, 2, 1, 1, 6});
  double sum = 0, first = 0;
  for (size_t i = 0; i < split.train.images.size(); ++i) sum += split.train.images[i];
  for (int i = 0; i < 784; ++i) first += split.train.images[i];
  CHECK(sum / split.train.images.size() == Approx(0.28604).epsilon(1e-4));
  CHECK(first == Approx(76247.0 / 255).epsilon(1e-6));
}

TEST_CASE("dataset: the converted MNIST digits load, about 1000 a class", "[dataset]") {
  EnvironmentVariable unset("CNNC_DATA", std::nullopt);
  if (!std::filesystem::exists(cnnc::dataDirectory("mnist"))) {
    WARN("MNIST is not converted at " << cnnc::dataDirectory("mnist")
                                      << " (scripts/setup.sh); skipped");
    return;
  }
  DatasetSplit split = cnnc::loadDataset("mnist");
  CHECK(split.train.height == 28);
  CHECK(split.test.width == 28);
  int64_t total = split.train.count + split.test.count;
  CHECK(total >= 9000);
  CHECK(total <= 11000);
  // The split is 85% / 15% within every class.
  std::array<int64_t, 10> train{}, test{};
  for (int32_t label : split.train.labels) ++train.at(label);
  for (int32_t label : split.test.labels) ++test.at(label);
  for (int c = 0; c < 10; ++c) {
    CHECK(train[c] + test[c] >= 800);
    CHECK(train[c] + test[c] <= 1200);
    CHECK(test[c] == Approx(0.15 * (train[c] + test[c])).margin(1));
  }
}

TEST_CASE("dataset: checkDatasetFits accepts the network's input shape and refuses others",
          "[dataset]") {
  Dataset data;
  data.name = "fashion-mnist (train)";
  data.count = 2;
  data.channels = 1;
  data.height = 28;
  data.width = 28;
  data.images.assign(2 * 784, 0.5f);
  data.labels = {3, 9};

  const int64_t image[3] = {1, 28, 28}, color[3] = {3, 32, 32}, flat[1] = {784},
                wrongFlat[1] = {3072};
  CHECK_NOTHROW(cnnc::checkDatasetFits(data, 3, image, 10));
  CHECK_NOTHROW(cnnc::checkDatasetFits(data, 1, flat, 10));
  CHECK_NOTHROW(cnnc::checkDatasetFits(data, 3, image, 100));
  CHECK(errorOf([&] { cnnc::checkDatasetFits(data, 3, color, 10); }) ==
        "dataset 'fashion-mnist (train)' has 1x28x28 images but network expects 3x32x32");
  CHECK_THAT(errorOf([&] { cnnc::checkDatasetFits(data, 1, wrongFlat, 10); }),
             Contains("'fashion-mnist (train)'") && Contains("784 values") &&
                 Contains("expects 3072 input features"));
  CHECK_THAT(errorOf([&] { cnnc::checkDatasetFits(data, 3, image, 5); }),
             Contains("'fashion-mnist (train)' has 10 classes but network has 5 outputs"));
  CHECK_THAT(errorOf([&] { cnnc::checkDatasetFits(data, 2, image, 10); }),
             Contains("'fashion-mnist (train)'") && Contains("rank 2"));

  Dataset few = data;
  few.classes = 4;
  CHECK_THAT(errorOf([&] { cnnc::checkDatasetFits(few, 3, image, 4); }),
             Contains("label 9 of example 1"));
  Dataset broken = data;
  broken.images.resize(784);
  CHECK_THAT(errorOf([&] { cnnc::checkDatasetFits(broken, 3, image, 10); }),
             Contains("inconsistent"));
}
