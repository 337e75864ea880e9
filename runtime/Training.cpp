// The training loop over in-memory datasets (ModelBase::train), evaluation,
// checkpoints and the metrics CSV. The network's own work (forward, the train
// step and the optimizer update) is the generated code behind Model.cpp.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

#include "AtomicFile.h"
#include "Model.h"
#include "Progress.h"
#include "Random.h"
#include "Safetensors.h"

namespace cnnc {

namespace {

constexpr double kPi = 3.14159265358979323846;

constexpr char kMetricsHeader[] =
    "epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second,seconds";

std::string format(const char* pattern, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* pattern, ...) {
  char text[512];
  va_list arguments;
  va_start(arguments, pattern);
  std::vsnprintf(text, sizeof text, pattern, arguments);
  va_end(arguments);
  return text;
}

double seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The order of epoch `epoch` (0-based): a function of (seed, epoch) alone,
// so that a resumed run shuffles as an uninterrupted one.
void shuffleForEpoch(std::vector<int64_t>& order, uint64_t seed, int epoch) {
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  Random random(splitmix64(seed) ^ splitmix64(0xC0FFEEull + static_cast<uint64_t>(epoch)));
  for (size_t i = order.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(random.below(i));
    std::swap(order[i - 1], order[j]);
  }
}

// PyTorch's schedulers stepped once per epoch; `epochsDone` epochs completed.
double scheduledLearningRate(const TrainConfig& config, double lr0, int epochsDone, int epochs) {
  std::string schedule = config.lrSchedule ? config.lrSchedule : "constant";
  if (schedule == "constant") return lr0;
  if (schedule == "step")
    return lr0 * std::pow(config.gamma, std::floor(static_cast<double>(epochsDone) /
                                                   static_cast<double>(config.stepSize)));
  if (schedule == "cosine")
    return lr0 * (1.0 + std::cos(kPi * static_cast<double>(epochsDone) / epochs)) / 2.0;
  throw Error("unknown lr_schedule '" + schedule + "'");
}

int argmax(const float* row, int64_t size) {
  return static_cast<int>(std::max_element(row, row + size) - row);
}

std::string percent(double fraction) {
  return format("%.2f%%", 100.0 * fraction);
}

// A CSV number; NaN (no test set) as "nan", which strtod and pandas read back.
std::string csvNumber(double value, const char* pattern) {
  if (std::isnan(value)) return "nan";
  return format(pattern, value);
}

std::string metricsRow(const EpochMetrics& m) {
  return std::to_string(m.epoch) + "," + csvNumber(m.trainLoss, "%.9g") + "," +
         csvNumber(m.trainAccuracy, "%.9g") + "," + csvNumber(m.testLoss, "%.9g") + "," +
         csvNumber(m.testAccuracy, "%.9g") + "," + csvNumber(m.imagesPerSecond, "%.1f") + "," +
         csvNumber(m.seconds, "%.3f");
}

// The rows of an existing metrics file for epochs 1..epochsDone (a resumed
// run keeps them; rows of epochs after the checkpoint are dropped).
std::vector<std::string> earlierMetricsRows(const std::string& path, int epochsDone) {
  std::vector<std::string> rows;
  std::ifstream in(path);
  if (!in) return rows;
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (first) {
      first = false;
      if (line != kMetricsHeader)
        throw Error("metrics file '" + path + "' does not start with the header '" +
                    kMetricsHeader + "'; refusing to overwrite it on resume");
      continue;
    }
    char* end = nullptr;
    long epoch = std::strtol(line.c_str(), &end, 10);
    if (end == line.c_str() || *end != ',') continue;
    if (epoch >= 1 && epoch <= epochsDone) rows.push_back(line);
  }
  return rows;
}

void writeMetrics(const std::string& path, const std::vector<std::string>& rows) {
  writeFileAtomically(path, [&](std::ostream& out) {
    out << kMetricsHeader << '\n';
    for (const std::string& row : rows) out << row << '\n';
  });
}

const std::string& metadataField(const safetensors::File& file, const std::string& key,
                                 const std::string& path) {
  auto found = file.metadata.find(key);
  if (found == file.metadata.end())
    throw Error("checkpoint '" + path + "' has no '" + key +
                "' in its metadata (is it a training checkpoint written by saveCheckpoint?)");
  return found->second;
}

int64_t metadataInteger(const safetensors::File& file, const std::string& key,
                        const std::string& path) {
  const std::string& text = metadataField(file, key, path);
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < 0)
    throw Error("checkpoint '" + path + "': metadata '" + key + "' is '" + text +
                "', not a non-negative integer");
  return value;
}

double metadataNumber(const safetensors::File& file, const std::string& key,
                      const std::string& path) {
  const std::string& text = metadataField(file, key, path);
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value))
    throw Error("checkpoint '" + path + "': metadata '" + key + "' is '" + text +
                "', not a finite number");
  return value;
}

}  // namespace

std::string Evaluation::confusionTable() const {
  if (classes <= 0) return "";
  // One width for every column: the widest count, class index or the corner.
  int64_t widest = classes - 1;
  for (int64_t count : confusion) widest = std::max(widest, count);
  size_t width = std::to_string(widest).size();
  const std::string corner = "true\\pred";
  std::ostringstream out;
  auto cell = [&](const std::string& text, size_t w) {
    out << std::string(w > text.size() ? w - text.size() : 0, ' ') << text;
  };
  cell(corner, corner.size());
  for (int c = 0; c < classes; ++c) {
    out << ' ';
    cell(std::to_string(c), width);
  }
  out << '\n';
  for (int row = 0; row < classes; ++row) {
    cell(std::to_string(row), corner.size());
    for (int c = 0; c < classes; ++c) {
      out << ' ';
      size_t index = static_cast<size_t>(row) * classes + c;
      cell(std::to_string(index < confusion.size() ? confusion[index] : 0), width);
    }
    out << '\n';
  }
  return out.str();
}

Evaluation ModelBase::evaluate(const Dataset& data, int batch) {
  if (batch < 1) throw Error("evaluate: batch must be at least 1, got " + std::to_string(batch));
  checkDatasetFits(data, info_.inputRank, info_.inputShape, info_.outputSize);
  if (data.count < 1) throw Error("evaluate: dataset '" + data.name + "' is empty");
  const int64_t outputs = info_.outputSize;
  bool mse = info_.train && std::string(info_.train->loss) == "mse";
  bool softmaxOutput = std::string(info_.layers[info_.layerCount - 1].kind) == "softmax";

  Evaluation result;
  result.count = data.count;
  result.classes = static_cast<int>(outputs);
  result.confusion.assign(static_cast<size_t>(outputs * outputs), 0);
  std::vector<float> out(static_cast<size_t>(std::min<int64_t>(batch, data.count) * outputs));
  double lossSum = 0;
  int64_t correct = 0;
  for (int64_t start = 0; start < data.count; start += batch) {
    int count = static_cast<int>(std::min<int64_t>(batch, data.count - start));
    forward(data.image(start), count, out.data());
    for (int k = 0; k < count; ++k) {
      const float* row = out.data() + static_cast<size_t>(k) * outputs;
      int label = data.labels[static_cast<size_t>(start + k)];
      int predicted = argmax(row, outputs);
      correct += predicted == label;
      ++result.confusion[static_cast<size_t>(label * outputs + predicted)];
      if (mse) {
        double squares = 0;
        for (int64_t j = 0; j < outputs; ++j) {
          double difference = row[j] - (j == label ? 1.0 : 0.0);
          squares += difference * difference;
        }
        lossSum += squares / static_cast<double>(outputs);
      } else if (softmaxOutput) {
        lossSum -= std::log(std::max(static_cast<double>(row[label]),
                                     static_cast<double>(std::numeric_limits<float>::min())));
      } else {
        // log-sum-exp shifted by the largest logit, so that nothing overflows.
        double largest = row[predicted], sum = 0;
        for (int64_t j = 0; j < outputs; ++j)
          sum += std::exp(static_cast<double>(row[j]) - largest);
        lossSum += largest + std::log(sum) - row[label];
      }
    }
  }
  result.loss = lossSum / static_cast<double>(data.count);
  result.accuracy = static_cast<double>(correct) / static_cast<double>(data.count);
  return result;
}

void ModelBase::saveCheckpoint(const std::string& path, int epochsDone) const {
  if (epochsDone < 0)
    throw Error("saveCheckpoint: epochsDone must not be negative, got " +
                std::to_string(epochsDone));
  // optimizerState() creates the zero slots a model that never stepped lacks;
  // that changes no observable value, so a const checkpoint may ask for it.
  std::vector<StateTensor> state = const_cast<ModelBase*>(this)->optimizerState();
  safetensors::File file;
  file.metadata = {{"format", "cnnc"},
                   {"network", info_.name},
                   {"architecture", info_.architectureHash},
                   {"epoch", std::to_string(epochsDone)},
                   {"optimizer", trainConfig().optimizer},
                   {"optimizer_steps", std::to_string(steps_)},
                   {"learning_rate", format("%.17g", learningRate_)},
                   {"seed", std::to_string(dropoutSeed_)}};
  for (int i = 0; i < info_.paramCount; ++i) {
    const ParamInfo& p = info_.params[i];
    file.tensors.push_back(
        {p.name, "F32", std::vector<int64_t>(p.shape, p.shape + p.rank), params_[i]});
  }
  for (const StateTensor& tensor : state)
    file.tensors.push_back({tensor.name, "F32", tensor.shape, *tensor.data});
  safetensors::write(path, file);
}

int ModelBase::loadCheckpoint(const std::string& path) {
  trainConfig();  // a network without training has no optimizer state to restore
  safetensors::File file = safetensors::read(path);
  auto meta = [&](const std::string& key) {
    auto found = file.metadata.find(key);
    return found == file.metadata.end() ? std::string() : found->second;
  };
  if (meta("network") != info_.name)
    throw Error("checkpoint '" + path + "' is of network '" + meta("network") + "', not '" +
                info_.name + "'");
  if (meta("architecture") != info_.architectureHash)
    throw Error("checkpoint '" + path + "' is of another architecture of network '" + info_.name +
                "' (architecture " + meta("architecture") + ", this one " + info_.architectureHash +
                ")");
  int64_t epochs = metadataInteger(file, "epoch", path);
  if (epochs > std::numeric_limits<int>::max())
    throw Error("checkpoint '" + path + "': metadata 'epoch' is too large");
  int64_t steps = metadataInteger(file, "optimizer_steps", path);
  double lr = metadataNumber(file, "learning_rate", path);
  auto seed = static_cast<uint64_t>(metadataInteger(file, "seed", path));

  // Everything is checked before anything changes: a refused checkpoint
  // leaves the model as it was.
  std::vector<safetensors::ExpectedTensor> expected;
  for (int i = 0; i < info_.paramCount; ++i) {
    const ParamInfo& p = info_.params[i];
    expected.push_back({p.name, std::vector<int64_t>(p.shape, p.shape + p.rank)});
  }
  safetensors::check(file, expected, path, {safetensors::kOptimizerPrefix},
                     {".num_batches_tracked"});
  std::vector<StateTensor> state = optimizerState();
  std::vector<safetensors::Tensor*> stateSources;
  for (const StateTensor& tensor : state) {
    auto found = std::find_if(file.tensors.begin(), file.tensors.end(),
                              [&](const safetensors::Tensor& t) { return t.name == tensor.name; });
    if (found == file.tensors.end())
      throw Error("checkpoint '" + path + "' is missing optimizer tensor '" + tensor.name + "'");
    if (found->shape != tensor.shape)
      throw Error("checkpoint '" + path + "': optimizer tensor '" + tensor.name + "' has shape " +
                  safetensors::shapeString(found->shape) + ", expected " +
                  safetensors::shapeString(tensor.shape));
    if (!found->isFloat())
      throw Error("checkpoint '" + path + "': optimizer tensor '" + tensor.name + "' has dtype " +
                  found->dtype + ", expected a floating-point type");
    stateSources.push_back(&*found);
  }
  for (const safetensors::Tensor& t : file.tensors) {
    if (t.name.rfind(safetensors::kOptimizerPrefix, 0) != 0) continue;
    bool known = std::any_of(state.begin(), state.end(),
                             [&](const StateTensor& s) { return s.name == t.name; });
    if (!known)
      throw Error("checkpoint '" + path + "' has unexpected optimizer tensor '" + t.name +
                  "' (this network trains with " + trainConfig().optimizer + ")");
  }

  for (int i = 0; i < info_.paramCount; ++i) {
    auto tensor =
        std::find_if(file.tensors.begin(), file.tensors.end(),
                     [&](const safetensors::Tensor& t) { return t.name == info_.params[i].name; });
    params_[i] = std::move(tensor->data);
  }
  for (size_t k = 0; k < state.size(); ++k) *state[k].data = std::move(stateSources[k]->data);
  steps_ = steps;
  learningRate_ = lr;
  dropoutSeed_ = seed;
  activationsValid_ = false;
  preparedValid_ = false;
  return static_cast<int>(epochs);
}

std::vector<EpochMetrics> ModelBase::train(const Dataset& train, const Dataset* test,
                                           const TrainOptions& options) {
  const TrainConfig& config = trainConfig();
  if (options.epochs < 0)
    throw Error("train: epochs must not be negative, got " + std::to_string(options.epochs));
  if (options.batch < 0)
    throw Error("train: batch must not be negative, got " + std::to_string(options.batch));
  if (options.lr < 0 || !std::isfinite(options.lr))
    throw Error("train: lr must be positive, got " + format("%g", options.lr));
  const int epochs = options.epochs > 0 ? options.epochs : static_cast<int>(config.epochs);
  const int64_t batch64 = options.batch > 0 ? options.batch : config.batch;
  const double lr0 = options.lr > 0 ? options.lr : config.lr;
  if (epochs < 1) throw Error("train: epochs must be at least 1, got " + std::to_string(epochs));
  if (batch64 < 1 || batch64 > std::numeric_limits<int>::max())
    throw Error("train: batch must be in [1, 2^31), got " + std::to_string(batch64));
  if (std::string(config.lrSchedule) == "step" && config.stepSize < 1)
    throw Error("train: lr_schedule=step needs step_size >= 1, got " +
                std::to_string(config.stepSize));
  const int batch = static_cast<int>(batch64);

  // A dataset that does not fit is refused before any work.
  checkDatasetFits(train, info_.inputRank, info_.inputShape, info_.outputSize);
  if (train.count < 1) throw Error("train: training set '" + train.name + "' is empty");
  if (test) checkDatasetFits(*test, info_.inputRank, info_.inputShape, info_.outputSize);

  std::ostream& out = options.out ? *options.out : std::cerr;
  Progress::Style style = Progress::Style::Lines;
  switch (options.progress) {
    case TrainOptions::Progress::Auto:
      style = Progress::isTerminal(out) ? Progress::Style::Bar : Progress::Style::Lines;
      break;
    case TrainOptions::Progress::Bar:
      style = Progress::Style::Bar;
      break;
    case TrainOptions::Progress::Lines:
      style = Progress::Style::Lines;
      break;
    case TrainOptions::Progress::None:
      style = Progress::Style::None;
      break;
  }
  Progress progress(out, style);

  int startEpoch = 0;
  uint64_t seed = options.seed >= 0 ? static_cast<uint64_t>(options.seed) : config.seed;
  if (!options.resume.empty()) {
    startEpoch = loadCheckpoint(options.resume);
    // The checkpoint's seed continues its run unless one is given.
    if (options.seed < 0) seed = dropoutSeed_;
    progress.message(format("resuming %s from '%s' after epoch %d", info_.name,
                            options.resume.c_str(), startEpoch));
  }
  dropoutSeed_ = seed;
  std::vector<std::string> metricsRows;
  if (!options.metrics.empty() && !options.resume.empty())
    metricsRows = earlierMetricsRows(options.metrics, startEpoch);

  // Every buffer of the loop, allocated once.
  const bool mse = std::string(config.loss) == "mse";
  const int64_t exampleSize = info_.inputSize, outputs = info_.outputSize;
  std::vector<int64_t> order(static_cast<size_t>(train.count));
  std::vector<float> images(static_cast<size_t>(batch * exampleSize));
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  std::vector<float> targets(mse ? static_cast<size_t>(batch * outputs) : 0);
  const int64_t stepsPerEpoch = (train.count + batch - 1) / batch;

  // The checkpoint that holds the last good weights, for the NaN message.
  std::string goodCheckpoint = options.resume;
  int goodEpoch = startEpoch;

  std::vector<EpochMetrics> history;
  for (int epoch = startEpoch; epoch < epochs; ++epoch) {
    double epochStart = seconds();
    setLearningRate(scheduledLearningRate(config, lr0, epoch, epochs));
    shuffleForEpoch(order, seed, epoch);
    std::string label = format("epoch %d/%d", epoch + 1, epochs);
    progress.start(label, stepsPerEpoch);

    double lossSum = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t step = 0; step < stepsPerEpoch; ++step) {
      int64_t first = step * batch;
      int n = static_cast<int>(std::min<int64_t>(batch, train.count - first));
      for (int k = 0; k < n; ++k) {
        int64_t example = order[static_cast<size_t>(first + k)];
        std::memcpy(images.data() + static_cast<size_t>(k) * exampleSize, train.image(example),
                    sizeof(float) * static_cast<size_t>(exampleSize));
        labels[static_cast<size_t>(k)] = train.labels[static_cast<size_t>(example)];
      }
      float loss;
      if (mse) {
        std::fill(targets.begin(), targets.begin() + static_cast<ptrdiff_t>(n * outputs), 0.0f);
        for (int k = 0; k < n; ++k) targets[static_cast<size_t>(k * outputs + labels[k])] = 1.0f;
        loss = train_step(images.data(), targets.data(), n);
      } else {
        loss = train_step(images.data(), labels.data(), n);
      }
      if (!std::isfinite(loss)) {
        progress.clear();
        std::string where =
            goodCheckpoint.empty()
                ? std::string("no checkpoint holds earlier weights") +
                      (options.checkpoint.empty() ? " (TrainOptions::checkpoint is not set)"
                                                  : " (no epoch had completed)")
                : "the last good weights (after epoch " + std::to_string(goodEpoch) +
                      ") are in checkpoint '" + goodCheckpoint + "'";
        throw Error("training of network '" + std::string(info_.name) + "' stopped: the loss is " +
                    format("%g", static_cast<double>(loss)) + " at epoch " +
                    std::to_string(epoch + 1) + ", step " + std::to_string(step + 1) + " of " +
                    std::to_string(stepsPerEpoch) + "; " + where);
      }
      lossSum += static_cast<double>(loss) * n;
      const std::vector<float>& predictions = trainOutputs();
      for (int k = 0; k < n; ++k)
        correct += argmax(predictions.data() + static_cast<size_t>(k) * outputs, outputs) ==
                   labels[static_cast<size_t>(k)];
      seen += n;
      progress.update(step + 1, seen,
                      format("loss %.4f  acc %s", lossSum / static_cast<double>(seen),
                             percent(static_cast<double>(correct) / seen).c_str()));
    }
    double trainSeconds = seconds() - epochStart;

    EpochMetrics metrics;
    metrics.epoch = epoch + 1;
    metrics.trainLoss = lossSum / static_cast<double>(seen);
    metrics.trainAccuracy = static_cast<double>(correct) / static_cast<double>(seen);
    metrics.testLoss = metrics.testAccuracy = std::numeric_limits<double>::quiet_NaN();
    if (test) {
      Evaluation evaluation = evaluate(*test);
      metrics.testLoss = evaluation.loss;
      metrics.testAccuracy = evaluation.accuracy;
    }
    // The rate is the training's; the seconds include the evaluation.
    metrics.imagesPerSecond = trainSeconds > 0 ? static_cast<double>(seen) / trainSeconds : 0;
    metrics.seconds = seconds() - epochStart;

    if (!options.checkpoint.empty()) {
      saveCheckpoint(options.checkpoint, epoch + 1);
      goodCheckpoint = options.checkpoint;
      goodEpoch = epoch + 1;
    }
    if (!options.metrics.empty()) {
      metricsRows.push_back(metricsRow(metrics));
      writeMetrics(options.metrics, metricsRows);
    }
    std::string summary = label + format("  train loss %.4f acc %s", metrics.trainLoss,
                                         percent(metrics.trainAccuracy).c_str());
    if (test)
      summary += format("  test loss %.4f acc %s", metrics.testLoss,
                        percent(metrics.testAccuracy).c_str());
    summary += format("  %.0f img/s  %.1f s", metrics.imagesPerSecond, metrics.seconds);
    progress.finish(summary);
    history.push_back(metrics);
  }
  if (startEpoch >= epochs)
    progress.message(
        format("nothing to train: the checkpoint has %d of %d epochs", startEpoch, epochs));
  return history;
}

}  // namespace cnnc
