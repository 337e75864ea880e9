// The training loop's options and results (ModelBase::train, ::evaluate).
#ifndef CNNC_RUNTIME_TRAINING_H
#define CNNC_RUNTIME_TRAINING_H

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace cnnc {

struct TrainOptions {
  int epochs = 0;        // 0: the .net file's `epochs`
  int batch = 0;         // 0: the .net file's `batch`
  double lr = 0;         // 0: the .net file's `lr`
  int64_t seed = -1;     // shuffling and dropout; -1: the .net file's `seed`
  std::string checkpoint;  // written atomically after every epoch; "" for none
  std::string resume;      // a checkpoint to continue from; "" to start afresh
  std::string metrics;     // the metrics CSV, one row per epoch; "" for none
  enum class Progress { Auto, Bar, Lines, None };
  Progress progress = Progress::Auto;  // Auto: a bar on a terminal, plain lines otherwise
  std::ostream* out = nullptr;         // progress and messages; null: std::cerr
};

struct EpochMetrics {
  int epoch = 0;  // 1-based
  double trainLoss = 0, trainAccuracy = 0;
  double testLoss = 0, testAccuracy = 0;  // NaN without a test set
  double imagesPerSecond = 0, seconds = 0;
};

struct Evaluation {
  double loss = 0, accuracy = 0;  // mean loss, fraction correct
  int64_t count = 0;
  int classes = 0;
  std::vector<int64_t> confusion;  // classes x classes, row = true label, column = predicted
  std::string confusionTable() const;
};

}  // namespace cnnc

#endif  // CNNC_RUNTIME_TRAINING_H
