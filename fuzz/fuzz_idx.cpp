// Fuzzes the dataset readers: any bytes must give a dataset or a cnnc::Error,
// never a crash, a hang, a huge allocation or a read out of bounds. A dataset
// that reads must be consistent: its sizes agree, its labels are below 10,
// its pixels are in [0,1], and it fits a network of its own shape.
//
// Input: one byte choosing the reader (even: IDX, odd: CIFAR-10), then for
// IDX two bytes giving the labels file's length (little-endian, clamped),
// the labels file and the images file; for CIFAR-10 the batch file. The
// files are written to a scratch directory because the readers take paths
// (and detect gzip from the content).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

#include "Dataset.h"
#include "Error.h"

namespace {

[[noreturn]] void failConsistency(const char* what) {
  std::fprintf(stderr, "dataset consistency: %s\n", what);
  std::abort();
}

void writeFile(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) std::abort();
  if (size && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);
}

const std::string& scratchPrefix() {
  static const std::string prefix = [] {
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp && *tmp ? tmp : "/tmp") + "/cnnc-fuzz-idx-" +
           std::to_string(::getpid()) + "-";
  }();
  return prefix;
}

void checkConsistent(const cnnc::Dataset& data) {
  if (data.count <= 0) failConsistency("no examples");
  if (int64_t(data.labels.size()) != data.count) failConsistency("label count");
  if (int64_t(data.images.size()) != data.count * data.exampleSize())
    failConsistency("pixel count");
  for (int32_t label : data.labels)
    if (label < 0 || label >= data.classes) failConsistency("label out of range");
  for (float pixel : data.images)
    if (!(pixel >= 0.0f && pixel <= 1.0f)) failConsistency("pixel out of [0,1]");
  const int64_t shape[3] = {data.channels, data.height, data.width};
  const int64_t flat[1] = {data.exampleSize()};
  try {
    cnnc::checkDatasetFits(data, 3, shape, data.classes);
    cnnc::checkDatasetFits(data, 1, flat, data.classes);
  } catch (const cnnc::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    failConsistency("a dataset does not fit its own shape");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool cifar = data[0] & 1;
  ++data, --size;
  const std::string images = scratchPrefix() + "images", labels = scratchPrefix() + "labels";
  try {
    if (cifar) {
      writeFile(images, data, size);
      checkConsistent(cnnc::readCifar10({images}));
    } else {
      if (size < 2) return 0;
      size_t labelsSize = data[0] | (size_t(data[1]) << 8);
      data += 2, size -= 2;
      if (labelsSize > size) labelsSize = size;
      writeFile(labels, data, labelsSize);
      writeFile(images, data + labelsSize, size - labelsSize);
      checkConsistent(cnnc::readIdx(images, labels));
    }
  } catch (const cnnc::Error&) {
  }
  ::unlink(images.c_str());
  ::unlink(labels.c_str());
  return 0;
}
