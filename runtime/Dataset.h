// Labelled image datasets held in memory: IDX files (MNIST, Fashion-MNIST;
// gzipped or not) and CIFAR-10 binary batches. Every file is validated
// (magic numbers, dimensions, counts, truncation) and a problem is a
// cnnc::Error that names the file. Pixels are scaled to [0,1] (byte/255).
#ifndef CNNC_RUNTIME_DATASET_H
#define CNNC_RUNTIME_DATASET_H

#include <cstdint>
#include <string>
#include <vector>

namespace cnnc {

struct Dataset {
  std::string name;                   // for messages: a path or "fashion-mnist (train)"
  int64_t count = 0;                  // examples
  int channels = 0, height = 0, width = 0;
  std::vector<float> images;          // count x channels x height x width (NCHW), in [0,1]
  std::vector<int32_t> labels;        // count, each in [0, classes)
  int classes = 10;

  int64_t exampleSize() const { return int64_t(channels) * height * width; }
  const float* image(int64_t i) const { return images.data() + i * exampleSize(); }
};

struct DatasetSplit {
  Dataset train, test;
};

// `spec` is `mnist`, `fashion-mnist` or `cifar10` (found in their installed
// locations, see dataDirectory) or a directory holding IDX files
// (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
// t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) or CIFAR-10
// binary batches (data_batch_1.bin ... data_batch_5.bin, test_batch.bin,
// there or in a cifar-10-batches-bin/ under it). The sets are named
// "SPEC (train)" and "SPEC (test)". A missing dataset is an error saying
// where it was looked for and how to get it.
DatasetSplit loadDataset(const std::string& spec);

// The directory a named dataset is read from: $CNNC_DATA/<name> when
// CNNC_DATA is set, else the installed location: fashion-mnist in
// /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist), others
// in /usr/local/share/cnnc/datasets/<name> (mnist is converted there by
// scripts/setup.sh).
std::string dataDirectory(const std::string& name);

// One IDX image file (idx3: count x rows x cols, unsigned bytes) and its
// labels (idx1); a file starting with gzip's magic bytes is decompressed,
// whatever its name. The counts must agree, labels must be below 10, and
// each file must hold exactly what its header says. The dataset is named
// after the images file.
Dataset readIdx(const std::string& imagesPath, const std::string& labelsPath);

// CIFAR-10 binary batches: records of 1 label byte and 3x32x32 bytes
// (channel-major, so NCHW as read); each file a whole, nonzero number of
// 3073-byte records (10000 in the real batches), gzipped or not.
Dataset readCifar10(const std::vector<std::string>& batchPaths);

// Refuses a dataset whose example shape is not the network's input shape
// (rank 3: {C, H, W}; rank 1: {features}, which fits when it is C*H*W, as an
// MLP reads flattened images), whose classes exceed the network's `classes`
// outputs, or whose labels do not fit them; the message names the dataset
// and both shapes.
void checkDatasetFits(const Dataset& data, int inputRank, const int64_t* inputShape, int64_t classes);

}  // namespace cnnc

#endif  // CNNC_RUNTIME_DATASET_H
