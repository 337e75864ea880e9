// The training loop (ModelBase::train), evaluate, checkpoints, the metrics CSV
// and the progress display, over a hand-written network: multinomial logistic
// regression on 1x4x4 "images" with 3 classes, whose pipelines are plain C++
// functions following TrainConfig's argument conventions. Expected values come
// from the formulas (PyTorch's schedulers and losses) and from hand counts,
// not from the loop's own output.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <HalideRuntime.h>

#include "Error.h"
#include "Model.h"
#include "Progress.h"
#include "Random.h"
#include "Safetensors.h"
#include "TestFiles.h"

using cnnc::Dataset;
using cnnc::EpochMetrics;
using cnnc::Error;
using cnnc::Evaluation;
using cnnc::ModelBase;
using cnnc::Progress;
using cnnc::TrainOptions;
using cnnc::testing::readBytes;
using cnnc::testing::ScratchDirectory;
using cnnc::testing::writeBytes;

namespace {

constexpr int kFeatures = 16, kClasses = 3;
// Example i of an "identified" dataset carries i in its first pixel, scaled
// by a power of two so that it is exact.
constexpr float kIdScale = 1.0f / 1024;

// What the fake pipelines saw, and the faults they are told to inject.
struct Recorder {
  std::vector<int> batchSizes;   // per step
  std::vector<int> ids;          // per example seen, in order (identified datasets)
  std::vector<float> weightLrs;  // the lr of every optimizer update of fc.weight
  int64_t steps = 0;
  int64_t nanAtStep = -1;   // 0-based step whose loss is NaN
  int64_t failAtStep = -1;  // 0-based step whose pipeline reports an error
  bool identified = false;  // the dataset is identified: check labels against ids
  int64_t labelMismatches = 0;
  int64_t conventionErrors = 0;
};
Recorder recorder;

halide_buffer_t* buffer(void* argument) {
  return static_cast<halide_buffer_t*>(argument);
}

// A buffer of the given extents, innermost first, dense, 32-bit of `code`.
bool isDense(void* argument, const std::vector<int32_t>& extents,
             halide_type_code_t code = halide_type_float) {
  halide_buffer_t* b = buffer(argument);
  if (!b || !b->host || b->type.code != code || b->type.bits != 32 ||
      b->dimensions != static_cast<int>(extents.size()))
    return false;
  int32_t stride = 1;
  for (size_t d = 0; d < extents.size(); ++d) {
    if (b->dim[d].min != 0 || b->dim[d].extent != extents[d] || b->dim[d].stride != stride)
      return false;
    stride *= extents[d];
  }
  return true;
}

float* floats(void* argument) {
  return reinterpret_cast<float*>(buffer(argument)->host);
}

int batchOf(void* input) {
  halide_buffer_t* b = buffer(input);
  return b && b->dimensions == 4 ? b->dim[3].extent : 0;
}

int conventionError() {
  ++recorder.conventionErrors;
  return -1;
}

void logits(const float* x, const float* weight, const float* bias, int n, float* out) {
  for (int e = 0; e < n; ++e)
    for (int c = 0; c < kClasses; ++c) {
      float sum = bias[c];
      for (int i = 0; i < kFeatures; ++i) sum += weight[c * kFeatures + i] * x[e * kFeatures + i];
      out[e * kClasses + c] = sum;
    }
}

void softmax(float* rows, int n) {
  for (int e = 0; e < n; ++e) {
    float* row = rows + e * kClasses;
    float largest = std::max(row[0], std::max(row[1], row[2])), sum = 0;
    for (int c = 0; c < kClasses; ++c) sum += (row[c] = std::exp(row[c] - largest));
    for (int c = 0; c < kClasses; ++c) row[c] /= sum;
  }
}

// forward: (input, fc.weight, fc.bias) -> output.
int forwardLogits(void** args) {
  int n = batchOf(args[0]);
  if (!isDense(args[0], {4, 4, 1, n}) || !isDense(args[1], {kFeatures, kClasses}) ||
      !isDense(args[2], {kClasses}) || !isDense(args[3], {kClasses, n}))
    return conventionError();
  logits(floats(args[0]), floats(args[1]), floats(args[2]), n, floats(args[3]));
  return 0;
}

int forwardSoftmax(void** args) {
  int status = forwardLogits(args);
  if (status == 0) softmax(floats(args[3]), batchOf(args[0]));
  return status;
}

// activations: (input, parameters) -> flatten's output, fc's output.
int activationsLogits(void** args) {
  int n = batchOf(args[0]);
  if (!isDense(args[3], {kFeatures, n}) || !isDense(args[4], {kClasses, n}))
    return conventionError();
  std::memcpy(floats(args[3]), floats(args[0]), sizeof(float) * kFeatures * n);
  void* forwardArgs[] = {args[0], args[1], args[2], args[4]};
  return forwardLogits(forwardArgs);
}

// trainStep: (input, labels or targets, fc.weight, fc.bias, dropout seed) ->
// (loss, fc.weight's gradient, fc.bias's gradient, output).
int trainStep(void** args, bool mse) {
  int n = batchOf(args[0]);
  bool labelsOk = mse ? isDense(args[1], {kClasses, n}) : isDense(args[1], {n}, halide_type_int);
  if (n < 1 || !isDense(args[0], {4, 4, 1, n}) || !labelsOk ||
      !isDense(args[2], {kFeatures, kClasses}) || !isDense(args[3], {kClasses}) || !args[4] ||
      !isDense(args[5], {}) || !isDense(args[6], {kFeatures, kClasses}) ||
      !isDense(args[7], {kClasses}) || !isDense(args[8], {kClasses, n}))
    return conventionError();
  if (recorder.steps == recorder.failAtStep) return -7;
  const float* x = floats(args[0]);
  std::vector<int32_t> labels(n);
  for (int e = 0; e < n; ++e) {
    if (mse) {
      const float* target = floats(args[1]) + e * kClasses;
      int hot = -1, ones = 0;
      for (int c = 0; c < kClasses; ++c) {
        if (target[c] == 1.0f)
          hot = c, ++ones;
        else if (target[c] != 0.0f)
          ones = 99;
      }
      if (ones != 1) ++recorder.labelMismatches;
      labels[e] = hot;
    } else {
      labels[e] = reinterpret_cast<const int32_t*>(buffer(args[1])->host)[e];
    }
    if (recorder.identified) {
      int id = static_cast<int>(std::lround(x[e * kFeatures] / kIdScale));
      recorder.ids.push_back(id);
      if (labels[e] != id % kClasses) ++recorder.labelMismatches;
    }
  }
  recorder.batchSizes.push_back(n);

  float* out = floats(args[8]);
  logits(x, floats(args[2]), floats(args[3]), n, out);
  std::vector<float> probabilities(out, out + n * kClasses);
  if (!mse) softmax(probabilities.data(), n);
  double loss = 0;
  std::vector<float> gradOut(n * kClasses);
  for (int e = 0; e < n; ++e)
    for (int c = 0; c < kClasses; ++c) {
      float hot = c == labels[e] ? 1.0f : 0.0f;
      int k = e * kClasses + c;
      if (mse) {
        float difference = out[k] - hot;
        loss += difference * difference / (n * kClasses);
        gradOut[k] = 2 * difference / (n * kClasses);
      } else {
        if (hot == 1.0f) loss -= std::log(probabilities[k]) / n;
        gradOut[k] = (probabilities[k] - hot) / n;
      }
    }
  float* gradWeight = floats(args[6]);
  float* gradBias = floats(args[7]);
  for (int c = 0; c < kClasses; ++c) {
    gradBias[c] = 0;
    for (int i = 0; i < kFeatures; ++i) gradWeight[c * kFeatures + i] = 0;
    for (int e = 0; e < n; ++e) {
      gradBias[c] += gradOut[e * kClasses + c];
      for (int i = 0; i < kFeatures; ++i)
        gradWeight[c * kFeatures + i] += gradOut[e * kClasses + c] * x[e * kFeatures + i];
    }
  }
  if (recorder.steps == recorder.nanAtStep) {
    loss = std::numeric_limits<double>::quiet_NaN();
    for (int k = 0; k < kClasses * kFeatures; ++k) gradWeight[k] = NAN;
  }
  *floats(args[5]) = static_cast<float>(loss);
  ++recorder.steps;
  return 0;
}

int crossEntropyStep(void** args) {
  return trainStep(args, false);
}
int mseStep(void** args) {
  return trainStep(args, true);
}

// PyTorch's SGD: (param, grad, velocity, lr, momentum, weight_decay,
// nesterov) -> (param, velocity).
int sgdUpdate(void** args) {
  int32_t count = buffer(args[0]) ? buffer(args[0])->dim[0].extent : 0;
  for (int i : {0, 1, 2, 7, 8})
    if (!isDense(args[i], {count})) return conventionError();
  if (buffer(args[7])->host != buffer(args[0])->host) return conventionError();
  float lr = *static_cast<float*>(args[3]), momentum = *static_cast<float*>(args[4]);
  float decay = *static_cast<float*>(args[5]);
  bool nesterov = *static_cast<bool*>(args[6]);
  if (count == kClasses * kFeatures) recorder.weightLrs.push_back(lr);
  const float *param = floats(args[0]), *grad = floats(args[1]), *velocity = floats(args[2]);
  float *paramOut = floats(args[7]), *velocityOut = floats(args[8]);
  for (int32_t i = 0; i < count; ++i) {
    float g = grad[i] + decay * param[i];
    float v = momentum * velocity[i] + g;
    float step = nesterov ? g + momentum * v : v;
    velocityOut[i] = v;
    paramOut[i] = param[i] - lr * step;
  }
  return 0;
}

// PyTorch's Adam: (param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
// weight_decay, bias_correction1, bias_correction2) -> (param, exp_avg,
// exp_avg_sq).
int adamUpdate(void** args) {
  int32_t count = buffer(args[0]) ? buffer(args[0])->dim[0].extent : 0;
  for (int i : {0, 1, 2, 3, 11, 12, 13})
    if (!isDense(args[i], {count})) return conventionError();
  auto scalar = [&](int i) { return *static_cast<float*>(args[i]); };
  float lr = scalar(4), beta1 = scalar(5), beta2 = scalar(6), eps = scalar(7), decay = scalar(8);
  float correction1 = scalar(9), correction2 = scalar(10);
  if (count == kClasses * kFeatures) recorder.weightLrs.push_back(lr);
  float *param = floats(args[11]), *average = floats(args[12]), *square = floats(args[13]);
  const float* grad = floats(args[1]);
  for (int32_t i = 0; i < count; ++i) {
    float g = grad[i] + decay * param[i];
    average[i] = beta1 * average[i] + (1 - beta1) * g;
    square[i] = beta2 * square[i] + (1 - beta2) * g * g;
    param[i] -= lr * (average[i] / correction1) / (std::sqrt(square[i] / correction2) + eps);
  }
  return 0;
}

const cnnc::ParamInfo kParams[] = {
    {"fc.weight", 2, {kClasses, kFeatures}, true, "default", kFeatures, kClasses},
    {"fc.bias", 1, {kClasses}, true, "default", kFeatures, kClasses},
};
const cnnc::LayerInfo kLayers[] = {
    {"flatten", "flatten", 1, {kFeatures}},
    {"fc", "dense", 1, {kClasses}},
};
const cnnc::LayerInfo kSoftmaxLayers[] = {
    {"flatten", "flatten", 1, {kFeatures}},
    {"fc", "dense", 1, {kClasses}},
    {"softmax", "softmax", 1, {kClasses}},
};

// The network's tables; configure before building a model on `info`.
struct TestNetwork {
  cnnc::TrainConfig config{"cross_entropy",
                           "sgd",
                           0.5,
                           0.9,
                           false,
                           0.9,
                           0.999,
                           1e-8,
                           0.0,
                           "constant",
                           1,
                           0.1,
                           16,
                           3,
                           7,
                           crossEntropyStep,
                           sgdUpdate};
  cnnc::NetworkInfo info{"logreg",
                         "hash-of-logreg",
                         3,
                         {1, 4, 4},
                         kFeatures,
                         kClasses,
                         1,
                         kParams,
                         2,
                         kLayers,
                         2,
                         forwardLogits,
                         forwardLogits,
                         activationsLogits,
                         &config};
  TestNetwork() { recorder = Recorder{}; }
  TestNetwork(const TestNetwork&) = delete;
  void useAdam() {
    config.optimizer = "adam";
    config.optimizerUpdate = adamUpdate;
    config.lr = 0.05;
  }
};

Dataset emptyDataset(const std::string& name, int64_t count) {
  Dataset data;
  data.name = name;
  data.count = count;
  data.channels = 1, data.height = 4, data.width = 4;
  data.classes = kClasses;
  data.images.assign(count * kFeatures, 0.0f);
  data.labels.assign(count, 0);
  return data;
}

// Class c is brighter in pixels 5c..5c+4: logistic regression separates it.
Dataset separable(int64_t count, uint64_t seed) {
  Dataset data = emptyDataset("separable", count);
  cnnc::Random random(seed);
  for (int64_t e = 0; e < count; ++e) {
    int label = static_cast<int>(random.below(kClasses));
    data.labels[e] = label;
    for (int i = 0; i < kFeatures; ++i)
      data.images[e * kFeatures + i] =
          static_cast<float>(random.uniform(0, 0.3) + (i / 5 == label ? 0.7 : 0.0));
  }
  return data;
}

// Example i carries its index in its first pixel and the label i % 3.
Dataset identified(int64_t count) {
  Dataset data = emptyDataset("identified", count);
  for (int64_t e = 0; e < count; ++e) {
    data.images[e * kFeatures] = static_cast<float>(e) * kIdScale;
    data.labels[e] = static_cast<int32_t>(e % kClasses);
  }
  recorder.identified = true;
  return data;
}

std::vector<float> parameterValues(ModelBase& model, const std::string& name) {
  const float* data = model.parameter(name);
  size_t count = name == "fc.weight" ? kClasses * kFeatures : kClasses;
  return std::vector<float>(data, data + count);
}

bool bitIdentical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) result.push_back(line);
  return result;
}

std::vector<std::string> fields(const std::string& row) {
  std::vector<std::string> result;
  std::stringstream in(row);
  for (std::string field; std::getline(in, field, ',');) result.push_back(field);
  return result;
}

TrainOptions quiet() {
  TrainOptions options;
  options.progress = TrainOptions::Progress::None;
  return options;
}

const char kHeader[] =
    "epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second,seconds";

}  // namespace

TEST_CASE("train: SGD on a separable set learns it", "[training-loop]") {
  TestNetwork net;
  ModelBase model(net.info, 1);
  Dataset train = separable(300, 11), test = separable(90, 12);
  TrainOptions options = quiet();
  options.epochs = 5;
  std::vector<EpochMetrics> history = model.train(train, &test, options);
  CHECK(recorder.conventionErrors == 0);
  REQUIRE(history.size() == 5);
  for (int e = 0; e < 5; ++e) CHECK(history[e].epoch == e + 1);
  CHECK(history.back().trainLoss < history.front().trainLoss);
  CHECK(history.back().trainAccuracy >= 0.95);
  CHECK(history.back().testAccuracy >= 0.95);
  // The reported test accuracy against predictions counted one by one.
  int correct = 0;
  for (int64_t e = 0; e < test.count; ++e)
    correct += model.predict(test.image(e)) == test.labels[e];
  CHECK(history.back().testAccuracy == Approx(correct / 90.0));
  CHECK(history.back().imagesPerSecond > 0);
  CHECK(history.back().seconds > 0);
}

TEST_CASE("train: every example once per epoch, the last partial batch included",
          "[training-loop]") {
  TestNetwork net;
  net.config.lr = 1e-3;
  ModelBase model(net.info, 1);
  Dataset train = identified(50);
  TrainOptions options = quiet();
  options.epochs = 3;
  options.batch = 16;
  std::vector<EpochMetrics> history = model.train(train, nullptr, options);
  CHECK(history.size() == 3);
  CHECK(recorder.batchSizes == std::vector<int>{16, 16, 16, 2, 16, 16, 16, 2, 16, 16, 16, 2});
  CHECK(recorder.labelMismatches == 0);  // every label travelled with its image
  REQUIRE(recorder.ids.size() == 150);
  std::vector<std::vector<int>> orders;
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<int> order(recorder.ids.begin() + 50 * epoch,
                           recorder.ids.begin() + 50 * epoch + 50);
    std::set<int> distinct(order.begin(), order.end());
    CHECK(distinct.size() == 50);
    CHECK(*distinct.begin() == 0);
    CHECK(*distinct.rbegin() == 49);
    orders.push_back(order);
  }
  std::vector<int> identity(50);
  for (int i = 0; i < 50; ++i) identity[i] = i;
  CHECK(orders[0] != identity);
  CHECK(orders[0] != orders[1]);
  CHECK(orders[1] != orders[2]);
  CHECK(model.optimizerSteps() == 12);
  // No test set: the test columns are NaN.
  CHECK(std::isnan(history[0].testLoss));
  CHECK(std::isnan(history[0].testAccuracy));
}

TEST_CASE("train: the shuffle follows the seed", "[training-loop]") {
  auto order = [](int64_t seed) {
    TestNetwork net;
    net.config.lr = 1e-3;
    ModelBase model(net.info, 1);
    Dataset train = identified(40);
    TrainOptions options = quiet();
    options.epochs = 1;
    options.seed = seed;
    model.train(train, nullptr, options);
    return recorder.ids;
  };
  CHECK(order(5) == order(5));
  CHECK(order(5) != order(6));
  CHECK(order(-1) == order(7));  // the .net file's seed
}

TEST_CASE("train: lr schedules give PyTorch's lr per epoch", "[training-loop]") {
  const double pi = std::acos(-1.0);
  struct Case {
    const char* schedule;
    int64_t stepSize;
    double gamma;
  };
  for (Case c : {Case{"constant", 1, 0.1}, Case{"step", 2, 0.5}, Case{"step", 3, 0.1},
                 Case{"cosine", 1, 0.1}}) {
    INFO(c.schedule << " step_size " << c.stepSize);
    TestNetwork net;
    net.config.lrSchedule = c.schedule;
    net.config.stepSize = c.stepSize;
    net.config.gamma = c.gamma;
    net.config.lr = 0.2;
    ModelBase model(net.info, 1);
    Dataset train = separable(20, 3);  // 2 steps an epoch at batch 16
    TrainOptions options = quiet();
    options.epochs = 5;
    model.train(train, nullptr, options);
    REQUIRE(recorder.weightLrs.size() == 10);
    for (int epoch = 0; epoch < 5; ++epoch) {
      double expected = 0.2;  // StepLR and CosineAnnealingLR(T_max=5, eta_min=0)
      if (std::string(c.schedule) == "step")
        expected = 0.2 * std::pow(c.gamma, epoch / c.stepSize);
      else if (std::string(c.schedule) == "cosine")
        expected = 0.2 * (1 + std::cos(pi * epoch / 5)) / 2;
      INFO("epoch " << epoch);
      CHECK(recorder.weightLrs[2 * epoch] == static_cast<float>(expected));
      CHECK(recorder.weightLrs[2 * epoch + 1] == static_cast<float>(expected));
    }
  }
  // TrainOptions::lr replaces the .net file's lr0.
  TestNetwork net;
  ModelBase model(net.info, 1);
  Dataset train = separable(16, 3);
  TrainOptions options = quiet();
  options.epochs = 2;
  options.lr = 0.125;
  model.train(train, nullptr, options);
  CHECK(recorder.weightLrs == std::vector<float>{0.125f, 0.125f});
  CHECK(model.learningRate() == 0.125);
}

TEST_CASE("train: a NaN loss stops training and the last good checkpoint stays",
          "[training-loop]") {
  ScratchDirectory scratch;
  Dataset train = separable(50, 21);  // 4 steps an epoch at batch 16
  std::string reference = scratch.file("reference.safetensors");
  {
    TestNetwork net;
    ModelBase model(net.info, 1);
    TrainOptions options = quiet();
    options.epochs = 2;
    options.checkpoint = reference;
    model.train(train, nullptr, options);
  }
  TestNetwork net;
  recorder.nanAtStep = 2 * 4 + 1;  // epoch 3, step 2
  ModelBase model(net.info, 1);
  TrainOptions options = quiet();
  options.epochs = 4;
  options.checkpoint = scratch.file("checkpoint.safetensors");
  options.metrics = scratch.file("metrics.csv");
  std::string message;
  try {
    model.train(train, nullptr, options);
  } catch (const Error& error) {
    message = error.what();
  }
  INFO(message);
  CHECK(message.find("epoch 3, step 2 of 4") != std::string::npos);
  CHECK(message.find("nan") != std::string::npos);
  CHECK(message.find("after epoch 2") != std::string::npos);
  CHECK(message.find(options.checkpoint) != std::string::npos);
  CHECK(recorder.steps == 10);  // nothing ran after the bad step
  // The checkpoint is epoch 2's, byte for byte as an undisturbed run wrote it.
  CHECK(readBytes(options.checkpoint) == readBytes(reference));
  CHECK(cnnc::safetensors::read(options.checkpoint).metadata.at("epoch") == "2");
  CHECK(lines(readBytes(options.metrics)).size() == 3);  // the header and 2 rows

  // Without a checkpoint the message says none holds the weights.
  TestNetwork again;
  recorder.nanAtStep = 0;
  ModelBase fresh(again.info, 1);
  CHECK_THROWS_WITH(fresh.train(train, nullptr, quiet()),
                    Catch::Contains("epoch 1, step 1 of 4") &&
                        Catch::Contains("no checkpoint holds earlier weights"));
}

TEST_CASE("train: resume after an interruption gives the uninterrupted run's weights",
          "[training-loop]") {
  for (bool adam : {false, true}) {
    INFO((adam ? "adam, cosine" : "sgd with momentum, step"));
    ScratchDirectory scratch;
    Dataset train = separable(50, 31), test = separable(20, 32);
    auto configure = [&](TestNetwork& net) {
      if (adam) {
        net.useAdam();
        net.config.lrSchedule = "cosine";
      } else {
        net.config.lrSchedule = "step";
        net.config.stepSize = 1;
        net.config.gamma = 0.7;
      }
    };
    TrainOptions options = quiet();
    options.epochs = 4;

    TestNetwork netA;
    configure(netA);
    ModelBase uninterrupted(netA.info, 1);
    std::vector<EpochMetrics> whole = uninterrupted.train(train, &test, options);

    options.checkpoint = scratch.file("checkpoint.safetensors");
    options.metrics = scratch.file("metrics.csv");
    TestNetwork netB;
    configure(netB);
    recorder.failAtStep = 2 * 4;  // the pipeline fails at epoch 3's first step
    ModelBase interrupted(netB.info, 1);
    CHECK_THROWS_AS(interrupted.train(train, &test, options), Error);

    TestNetwork netC;
    configure(netC);
    ModelBase resumed(netC.info, 99);  // other initial weights: all must come from the checkpoint
    options.resume = options.checkpoint;
    std::vector<EpochMetrics> rest = resumed.train(train, &test, options);
    CHECK(recorder.conventionErrors == 0);
    REQUIRE(rest.size() == 2);
    CHECK(rest[0].epoch == 3);
    CHECK(rest[1].epoch == 4);
    CHECK(rest[1].trainLoss == whole[3].trainLoss);
    CHECK(rest[1].testAccuracy == whole[3].testAccuracy);
    CHECK(recorder.steps == 8);  // epochs 3 and 4 only
    CHECK(resumed.optimizerSteps() == uninterrupted.optimizerSteps());
    CHECK(bitIdentical(parameterValues(resumed, "fc.weight"),
                       parameterValues(uninterrupted, "fc.weight")));
    CHECK(bitIdentical(parameterValues(resumed, "fc.bias"),
                       parameterValues(uninterrupted, "fc.bias")));
    std::vector<std::string> csv = lines(readBytes(options.metrics));
    REQUIRE(csv.size() == 5);
    for (int e = 1; e <= 4; ++e) CHECK(fields(csv[e])[0] == std::to_string(e));
    CHECK(cnnc::safetensors::read(options.checkpoint).metadata.at("epoch") == "4");

    // A checkpoint already at the last epoch leaves nothing to do.
    CHECK(resumed.train(train, &test, options).empty());
  }
}

TEST_CASE("train: the metrics CSV", "[training-loop]") {
  ScratchDirectory scratch;
  TestNetwork net;
  ModelBase model(net.info, 1);
  Dataset train = separable(40, 41), test = separable(10, 42);
  TrainOptions options = quiet();
  options.epochs = 3;
  options.metrics = scratch.file("metrics.csv");
  std::vector<EpochMetrics> history = model.train(train, &test, options);
  std::vector<std::string> csv = lines(readBytes(options.metrics));
  REQUIRE(csv.size() == 4);
  CHECK(csv[0] == kHeader);
  for (int e = 1; e <= 3; ++e) {
    std::vector<std::string> row = fields(csv[e]);
    REQUIRE(row.size() == 7);
    CHECK(row[0] == std::to_string(e));
    for (int column : {2, 4}) {
      double accuracy = std::stod(row[column]);
      CHECK(accuracy >= 0);
      CHECK(accuracy <= 1);
    }
    CHECK(std::stod(row[1]) == Approx(history[e - 1].trainLoss));
    CHECK(std::stod(row[3]) == Approx(history[e - 1].testLoss));
    CHECK(std::stod(row[4]) == Approx(history[e - 1].testAccuracy));
  }
  CHECK(scratch.entries() == std::vector<std::string>{"metrics.csv"});  // no temporary left

  SECTION("without a test set the test columns are nan") {
    options.metrics = scratch.file("no-test.csv");
    model.train(train, nullptr, options);
    std::vector<std::string> row = fields(lines(readBytes(options.metrics))[1]);
    CHECK(row[3] == "nan");
    CHECK(row[4] == "nan");
  }
  SECTION("a resumed run keeps the rows up to its checkpoint and drops later ones") {
    options.checkpoint = scratch.file("checkpoint.safetensors");
    options.epochs = 2;
    TestNetwork other;
    ModelBase first(other.info, 1);
    first.train(train, &test, options);
    std::string kept = lines(readBytes(options.metrics))[1];
    // A stale row of an epoch after the checkpoint, as a crash would leave.
    std::ofstream(options.metrics, std::ios::app) << "3,9,0.5,9,0.5,1,1\n";
    options.resume = options.checkpoint;
    options.epochs = 4;
    first.train(train, &test, options);
    std::vector<std::string> rows = lines(readBytes(options.metrics));
    REQUIRE(rows.size() == 5);
    CHECK(rows[1] == kept);
    CHECK(rows[3] != "3,9,0.5,9,0.5,1,1");
    for (int e = 1; e <= 4; ++e) CHECK(fields(rows[e])[0] == std::to_string(e));
  }
}

TEST_CASE("checkpoints: round trip, another network refused, a missing optimizer tensor named",
          "[training-loop]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("checkpoint.safetensors");
  TestNetwork net;
  ModelBase model(net.info, 1);
  Dataset train = separable(40, 51);
  TrainOptions options = quiet();
  options.epochs = 1;
  options.seed = 1234;
  model.train(train, nullptr, options);
  model.saveCheckpoint(path, 1);

  cnnc::safetensors::File file = cnnc::safetensors::read(path);
  CHECK(file.metadata.at("format") == "cnnc");
  CHECK(file.metadata.at("network") == "logreg");
  CHECK(file.metadata.at("architecture") == "hash-of-logreg");
  CHECK(file.metadata.at("epoch") == "1");
  CHECK(file.metadata.at("optimizer_steps") == "3");
  CHECK(std::stod(file.metadata.at("learning_rate")) == 0.5);
  CHECK(file.metadata.at("seed") == "1234");
  std::vector<std::string> names;
  for (const auto& tensor : file.tensors) names.push_back(tensor.name);
  CHECK(names == std::vector<std::string>{"fc.bias", "fc.weight",
                                          "optimizer.fc.bias.momentum_buffer",
                                          "optimizer.fc.weight.momentum_buffer"});
  CHECK(file.find("fc.weight")->data == parameterValues(model, "fc.weight"));

  TestNetwork net2;
  ModelBase loaded(net2.info, 2);
  CHECK(loaded.loadCheckpoint(path) == 1);
  CHECK(bitIdentical(parameterValues(loaded, "fc.weight"), parameterValues(model, "fc.weight")));
  CHECK(bitIdentical(parameterValues(loaded, "fc.bias"), parameterValues(model, "fc.bias")));
  CHECK(loaded.optimizerSteps() == 3);
  CHECK(loaded.learningRate() == 0.5);
  std::vector<cnnc::StateTensor> expected = model.optimizerState(), got = loaded.optimizerState();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].name == expected[i].name);
    CHECK(bitIdentical(*got[i].data, *expected[i].data));
  }
  // The velocity is not zero after a step: it really was restored.
  CHECK(std::any_of(got[0].data->begin(), got[0].data->end(), [](float v) { return v != 0; }));

  SECTION("a checkpoint of another network is refused, the model unchanged") {
    TestNetwork otherNet;
    otherNet.info.name = "other";
    ModelBase other(otherNet.info, 3);
    std::vector<float> before = parameterValues(other, "fc.weight");
    CHECK_THROWS_WITH(other.loadCheckpoint(path),
                      Catch::Contains("is of network 'logreg', not 'other'"));
    otherNet.info.name = "logreg";
    otherNet.info.architectureHash = "another-hash";
    CHECK_THROWS_WITH(other.loadCheckpoint(path), Catch::Contains("another architecture"));
    CHECK(bitIdentical(parameterValues(other, "fc.weight"), before));
  }
  SECTION("a missing or misshaped optimizer tensor is named") {
    cnnc::safetensors::File broken = file;
    broken.tensors.erase(broken.tensors.begin() + 3);
    std::string brokenPath = scratch.file("broken.safetensors");
    cnnc::safetensors::write(brokenPath, broken);
    CHECK_THROWS_WITH(
        loaded.loadCheckpoint(brokenPath),
        Catch::Contains("missing optimizer tensor 'optimizer.fc.weight.momentum_buffer'"));
    broken = file;
    broken.tensors[2].shape = {1, 3};
    cnnc::safetensors::write(brokenPath, broken);
    CHECK_THROWS_WITH(loaded.loadCheckpoint(brokenPath),
                      Catch::Contains("'optimizer.fc.bias.momentum_buffer' has shape [1, 3]"));
  }
  SECTION("an Adam network refuses SGD's state") {
    TestNetwork adamNet;
    adamNet.useAdam();
    ModelBase adam(adamNet.info, 1);
    CHECK_THROWS_WITH(adam.loadCheckpoint(path),
                      Catch::Contains("missing optimizer tensor 'optimizer.fc.weight.exp_avg'"));
  }
  SECTION("a weights file without training metadata is not a checkpoint") {
    std::string weights = scratch.file("weights.safetensors");
    model.save(weights);
    CHECK_THROWS_WITH(loaded.loadCheckpoint(weights), Catch::Contains("no 'epoch'"));
  }
}

TEST_CASE("evaluate: loss, accuracy and the confusion matrix against a hand count",
          "[training-loop]") {
  // fc computes logit c = pixel c, so each example's logits are its first
  // three pixels.
  const float examples[7][3] = {{3, 0, 0}, {0, 2, 0}, {0, 0, 1}, {1, 0, 0},
                                {0, 5, 0}, {0, 0, 4}, {2, 0, 0}};
  const int32_t labels[7] = {0, 0, 2, 1, 1, 2, 2};
  Dataset data = emptyDataset("hand", 7);
  for (int e = 0; e < 7; ++e) {
    for (int c = 0; c < 3; ++c) data.images[e * kFeatures + c] = examples[e][c];
    data.labels[e] = labels[e];
  }
  auto identityWeights = [](ModelBase& model) {
    float* weight = model.parameter("fc.weight");
    std::fill(weight, weight + kClasses * kFeatures, 0.0f);
    for (int c = 0; c < 3; ++c) weight[c * kFeatures + c] = 1;
    std::fill(model.parameter("fc.bias"), model.parameter("fc.bias") + 3, 0.0f);
  };
  // Predictions 0,1,2,0,1,2,0: rows are the true labels.
  const std::vector<int64_t> confusion = {1, 1, 0, 1, 1, 0, 1, 0, 2};
  double crossEntropy = 0, squares = 0;
  for (int e = 0; e < 7; ++e) {
    const float* z = examples[e];
    crossEntropy += std::log(std::exp(z[0]) + std::exp(z[1]) + std::exp(z[2])) - z[labels[e]];
    for (int c = 0; c < 3; ++c) squares += std::pow(z[c] - (c == labels[e] ? 1.0 : 0.0), 2) / 3;
  }

  SECTION("logits: log-sum-exp") {
    TestNetwork net;
    ModelBase model(net.info, 1);
    identityWeights(model);
    for (int batch : {256, 3, 1}) {
      Evaluation result = model.evaluate(data, batch);
      CHECK(result.count == 7);
      CHECK(result.classes == 3);
      CHECK(result.accuracy == Approx(4.0 / 7));
      CHECK(result.confusion == confusion);
      CHECK(result.loss == Approx(crossEntropy / 7));
    }
    CHECK(model.evaluate(data).confusionTable() ==
          "true\\pred 0 1 2\n"
          "        0 1 1 0\n"
          "        1 1 1 0\n"
          "        2 1 0 2\n");
    // Logits far beyond exp's range: 1000 + log(1 + 2 e^-1000) = 1000.
    Dataset large = emptyDataset("large", 1);
    large.images[0] = 1000;
    large.labels[0] = 1;
    CHECK(model.evaluate(large).loss == Approx(1000));
  }
  SECTION("a softmax output: -log p") {
    TestNetwork net;
    net.info.layers = kSoftmaxLayers;
    net.info.layerCount = 3;
    net.info.forward = net.info.forwardOne = forwardSoftmax;
    ModelBase model(net.info, 1);
    identityWeights(model);
    Evaluation result = model.evaluate(data, 4);
    CHECK(result.confusion == confusion);
    CHECK(result.loss == Approx(crossEntropy / 7).epsilon(1e-5));
  }
  SECTION("mse against one-hot targets") {
    TestNetwork net;
    net.config.loss = "mse";
    ModelBase model(net.info, 1);
    identityWeights(model);
    Evaluation result = model.evaluate(data);
    CHECK(result.confusion == confusion);
    CHECK(result.loss == Approx(squares / 7));
  }
}

TEST_CASE("confusionTable: columns as wide as the widest count", "[training-loop]") {
  Evaluation evaluation;
  evaluation.classes = 2;
  evaluation.confusion = {1234, 5, 0, 77};
  CHECK(evaluation.confusionTable() ==
        "true\\pred    0    1\n"
        "        0 1234    5\n"
        "        1    0   77\n");
}

TEST_CASE("train: an mse network gets one-hot targets of the labels", "[training-loop]") {
  TestNetwork net;
  net.config.loss = "mse";
  net.config.trainStep = mseStep;
  net.config.lr = 0.01;
  ModelBase model(net.info, 1);
  Dataset train = identified(30);
  TrainOptions options = quiet();
  options.epochs = 2;
  options.batch = 8;
  model.train(train, nullptr, options);
  CHECK(recorder.conventionErrors == 0);
  CHECK(recorder.ids.size() == 60);
  CHECK(recorder.labelMismatches == 0);
}

TEST_CASE("train: refusals before any step", "[training-loop]") {
  TestNetwork net;
  ModelBase model(net.info, 1);
  Dataset wrongShape = emptyDataset("wrong-shape", 10);
  wrongShape.height = 5;
  wrongShape.width = 5;
  wrongShape.images.assign(10 * 25, 0.0f);
  CHECK_THROWS_AS(model.train(wrongShape, nullptr, quiet()), Error);
  Dataset badLabel = separable(10, 1);
  badLabel.labels[4] = 3;
  Dataset good = separable(10, 2);
  CHECK_THROWS_AS(model.train(good, &badLabel, quiet()), Error);
  TrainOptions options = quiet();
  options.batch = -1;
  CHECK_THROWS_WITH(model.train(good, nullptr, options), Catch::Contains("batch"));
  CHECK(recorder.steps == 0);

  TestNetwork untrained;
  untrained.info.train = nullptr;
  ModelBase inferenceOnly(untrained.info, 1);
  CHECK_THROWS_WITH(inferenceOnly.train(good, nullptr, quiet()),
                    Catch::Contains("no training settings"));
}

TEST_CASE("train: plain progress lines when the stream is not a terminal", "[training-loop]") {
  TestNetwork net;
  ModelBase model(net.info, 1);
  Dataset train = separable(40, 61), test = separable(10, 62);
  std::ostringstream out;
  TrainOptions options;
  options.epochs = 3;
  options.out = &out;
  model.train(train, &test, options);
  std::vector<std::string> printed = lines(out.str());
  REQUIRE(printed.size() == 3);
  for (int e = 0; e < 3; ++e) {
    INFO(printed[e]);
    CHECK(printed[e].rfind("epoch " + std::to_string(e + 1) + "/3", 0) == 0);
    CHECK(printed[e].find("train loss") != std::string::npos);
    CHECK(printed[e].find("test loss") != std::string::npos);
    CHECK(printed[e].find("img/s") != std::string::npos);
  }
  CHECK(out.str().find('\r') == std::string::npos);

  std::ostringstream silent;
  options.out = &silent;
  options.progress = TrainOptions::Progress::None;
  model.train(train, &test, options);
  CHECK(silent.str().empty());
}

TEST_CASE("Progress: a bar redrawn at most ten times a second", "[training-loop]") {
  double now = 0;
  std::ostringstream out;
  Progress progress(out, Progress::Style::Bar, [&] { return now; });
  progress.start("epoch 1/2", 100);
  for (int step = 1; step <= 100; ++step) {
    now += 0.01;  // 100 steps in one second
    progress.update(step, step * 32, "loss 0.5");
  }
  std::string drawn = out.str();
  auto redraws = std::count(drawn.begin(), drawn.end(), '\r');
  CHECK(redraws >= 9);
  CHECK(redraws <= 12);
  CHECK(drawn.find("epoch 1/2 [") != std::string::npos);
  CHECK(drawn.find("100/100") != std::string::npos);  // the last step is always drawn
  CHECK(drawn.find("ETA 0:01") != std::string::npos);
  CHECK(drawn.find("3200/s") != std::string::npos);
  CHECK(drawn.find('\n') == std::string::npos);
  progress.finish("epoch 1/2 done");
  std::string text = out.str();
  CHECK(text.substr(text.size() - 15) == "epoch 1/2 done\n");
  CHECK(!Progress::isTerminal(out));
}

TEST_CASE("Progress: plain lines, a tenth at most, for long work only", "[training-loop]") {
  double now = 0;
  std::ostringstream out;
  Progress progress(out, Progress::Style::Lines, [&] { return now; });
  progress.start("short", 100);
  for (int step = 1; step <= 100; ++step) progress.update(step, step, "x");  // no time passes
  progress.finish("short done");
  CHECK(out.str() == "short done\n");

  out.str("");
  progress.start("long", 1000);
  for (int step = 1; step <= 1000; ++step) {
    now += 0.1;  // 100 s in all
    progress.update(step, step, "x");
  }
  progress.finish("long done");
  std::vector<std::string> printed = lines(out.str());
  CHECK(printed.size() == 10);  // nine tenths and the summary
  CHECK(printed.front().rfind("long  100/1000  x", 0) == 0);
  CHECK(printed.back() == "long done");

  std::ostringstream none;
  Progress nothing(none, Progress::Style::None, [&] { return now; });
  nothing.start("x", 10);
  nothing.update(5, 5, "x");
  nothing.message("m");
  nothing.finish("x");
  CHECK(none.str().empty());
  CHECK(cnnc::formatDuration(65) == "1:05");
  CHECK(cnnc::formatDuration(7387) == "2:03:07");
}
