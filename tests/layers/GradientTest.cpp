// Every layer kind's backward pass (lowerTraining with the training schedule,
// JIT-compiled) against central finite differences of a double-precision
// reference loss, over the shapes of the forward tests; the loss itself and
// batchnorm's running statistics against the reference; the hand-derived
// gradients against Halide's propagate_adjoints on the same forward pass;
// and the AVX2 and SSE targets against the same references.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <set>

#include "Helpers.h"
#include "LayerKinds.h"
#include "ReferenceGradients.h"
#include "Training.h"
#include "TrainingSchedule.h"

using namespace cnnc;
namespace ref = cnnc::reference;

namespace {

// The step of the central differences: in double, small enough that no
// probe crosses a relu kink or a change of the max in a pooling window
// (inputs are distinct and away from 0 by more than it), large enough that
// rounding stays far below the tolerance.
constexpr double kStep = 1e-5;
// Of the tensor's gradient scale: float32 forward and backward against
// double differences (measured: at most 1.6e-6).
constexpr double kTolerance = 1e-4;
// A tensor whose gradient is exactly 0 (a bias before a batchnorm) keeps
// float32's rounding of the cancellation: its scale is at least this share
// of the case's largest gradient.
constexpr double kScaleFloor = 1e-2;
constexpr size_t kProbesPerTensor = 40;
// Smaller tensors are probed everywhere: an unread row (a pool's window
// leaving the last one out) must get exactly its zero gradient.
constexpr size_t kProbeEverywhereUpTo = 800;

struct GradientCase {
  const char* group;   // the TEST_CASE that runs it
  const char* input;   // one example's shape
  const char* layers;  // the statements after `input`
  int batch;
  const char* loss;  // "mse" or "cross_entropy"
};

const GradientCase kCases[] = {
    // conv2d with each activation: odd and prime sizes, rectangular
    // kernels, strides, padding, dilation, groups
    {"conv2d", "1x28x28", "conv2d filters=6 kernel=5 pad=2 activation=relu", 3, "mse"},
    {"conv2d", "3x13x11", "conv2d filters=5 kernel=3", 1, "mse"},
    {"conv2d", "3x17x19", "conv2d filters=7 kernel=3x5 stride=2x1 pad=1x2", 2, "mse"},
    {"conv2d", "4x23x7", "conv2d filters=8 kernel=2x3 stride=3 pad=1 bias=false activation=tanh", 1,
     "mse"},
    {"conv2d", "2x29x31", "conv2d filters=3 kernel=3 dilation=2 pad=same activation=sigmoid", 2,
     "mse"},
    {"conv2d", "6x11x13", "conv2d filters=9 kernel=3 groups=3 pad=1 activation=leaky_relu", 2,
     "mse"},
    {"conv2d", "8x9x9", "conv2d filters=8 kernel=3 groups=8 stride=2", 1, "mse"},
    {"conv2d", "32x15x15", "conv2d filters=48 kernel=1", 2, "mse"},
    {"conv2d", "3x37x37", "conv2d filters=16 kernel=7 stride=2 pad=3", 1, "mse"},
    {"conv2d", "19x8x8", "conv2d filters=33 kernel=3 pad=1 activation=relu", 5, "mse"},
    {"conv2d", "3x8x7",
     "conv2d filters=4 kernel=3 stride=2 dilation=1x2 activation=tanh\ndense units=5", 3,
     "cross_entropy"},
    // pooling: padding, overlapping windows, rectangular windows
    {"pooling", "6x28x28", "maxpool kernel=2", 2, "mse"},
    {"pooling", "5x13x11", "maxpool kernel=3 stride=2 pad=1", 1, "mse"},
    {"pooling", "3x10x9", "maxpool kernel=3x2 stride=1x3 pad=1x0", 3, "mse"},
    {"pooling", "4x9x8", "conv2d filters=3 kernel=3 pad=1\nmaxpool kernel=3 stride=2 pad=1", 2,
     "mse"},
    {"pooling", "6x28x28", "avgpool kernel=2", 1, "mse"},
    {"pooling", "5x13x11", "avgpool kernel=3 stride=2 pad=1", 2, "mse"},
    {"pooling", "3x10x9", "avgpool kernel=2x3 stride=1x2 pad=1", 2, "mse"},
    // windows that leave the last row and column of an odd input unread
    {"pooling", "3x7x9", "maxpool kernel=2", 2, "mse"},
    {"pooling", "3x7x9", "avgpool kernel=2", 1, "mse"},
    {"pooling", "2x9x11", "conv2d filters=5 kernel=3 pad=1 activation=relu\nmaxpool kernel=2", 2,
     "mse"},
    {"pooling", "7x7x5", "global_avgpool", 3, "mse"},
    {"pooling", "5x6x4", "conv2d filters=6 kernel=3 pad=1 activation=tanh\nglobal_avgpool\nflatten",
     2, "cross_entropy"},
    // flatten and dense (an image input flattened implicitly)
    {"dense", "5x3x4", "flatten", 2, "mse"},
    {"dense", "16x5x5", "flatten\ndense units=12 activation=relu", 3, "mse"},
    {"dense", "16x5x5", "dense units=7", 1, "cross_entropy"},
    {"dense", "37", "dense units=13 bias=false activation=sigmoid", 4, "mse"},
    {"dense", "784", "dense units=100 activation=relu\ndense units=10\nsoftmax", 2,
     "cross_entropy"},
    {"dense", "300", "dense units=70", 1, "mse"},
    {"dense", "20", "dense units=9 activation=tanh\ndense units=4 activation=leaky_relu", 3, "mse"},
    {"dense", "3x4x5", "dense units=6 bias=false", 2, "mse"},
    {"dense", "45", "dense units=33 activation=relu", 5, "mse"},
    // batchnorm in training mode: batch statistics, images and flat
    {"batchnorm", "4x9x7", "conv2d filters=6 kernel=3 bias=false\nbatchnorm\nrelu", 2, "mse"},
    {"batchnorm", "4x9x7", "batchnorm eps=1e-3 momentum=0.3", 2, "mse"},
    {"batchnorm", "23", "batchnorm", 3, "mse"},
    {"batchnorm", "12", "dense units=8\nbatchnorm momentum=0.2\ndense units=5", 4, "cross_entropy"},
    {"batchnorm", "3x5x4", "batchnorm\nsigmoid", 1, "mse"},
    // dropout: the identity at rate 0, else the forward's mask
    {"dropout", "23", "dropout rate=0", 2, "mse"},
    {"dropout", "23", "dropout rate=0.3", 2, "mse"},
    {"dropout", "3x5x7", "conv2d filters=4 kernel=3 pad=1\ndropout rate=0.5", 2, "mse"},
    {"dropout", "9", "dense units=11 activation=tanh\ndropout rate=0.25\ndense units=4", 3,
     "cross_entropy"},
    // activations as layers, softmax not last and last
    {"activations", "3x5x7", "relu", 2, "mse"},
    {"activations", "3x5x7", "leaky_relu alpha=0.2", 1, "mse"},
    {"activations", "3x5x7", "sigmoid", 2, "mse"},
    {"activations", "3x5x7", "tanh", 1, "mse"},
    {"activations", "2x6x5", "conv2d filters=3 kernel=3\nleaky_relu alpha=0.3\ntanh", 2, "mse"},
    {"softmax", "10", "softmax", 4, "mse"},
    {"softmax", "10x3x2", "softmax", 2, "mse"},
    {"softmax", "8", "dense units=6\nsoftmax\ndense units=3", 3, "cross_entropy"},
    {"softmax", "7", "dense units=5\nsoftmax", 3, "cross_entropy"},
    {"softmax", "6", "dense units=5", 4, "cross_entropy"},
    {"softmax", "10", "softmax", 3, "cross_entropy"},
    // add (three inputs, the network input among them) and concat
    {"add_concat", "4x6x5",
     "a: conv2d filters=4 kernel=3 pad=1\nb: relu from=input\nadd from=a,b,input activation=relu",
     2, "mse"},
    {"add_concat", "4x6x5",
     "a: conv2d filters=3 kernel=1\nb: maxpool kernel=3 stride=1 pad=1 from=input\nconcat "
     "from=a,b,input",
     2, "mse"},
    {"add_concat", "12", "a: dense units=5\nb: dense units=7 from=input\nconcat from=b,a", 3,
     "mse"},
    {"add_concat", "6",
     "a: dense units=6 activation=tanh\nadd from=a,input activation=sigmoid\ndense units=3", 2,
     "cross_entropy"},
};

std::string caseLabel(const GradientCase& c) {
  std::string layers = c.layers;
  for (size_t at; (at = layers.find('\n')) != std::string::npos;) layers.replace(at, 1, "; ");
  return fmt::format("{} | {} | batch {} | {}", c.input, layers, c.batch, c.loss);
}

// One case's network and its data: float values handed to Halide, the same
// values in double for the reference.
struct Problem {
  Network net;
  std::string loss;
  int batch = 0;
  std::vector<int64_t> inputShape, outputShape;  // batch first
  std::vector<float> input, targets;
  std::vector<int32_t> labels;
  std::vector<std::vector<float>> params;  // lowered.params order
  std::vector<std::string> paramNames;     // "layer.param"
  std::vector<const ParamSpec*> paramSpecs;
  ref::TrainingData data;
};

ref::Tensor64 toTensor64(std::vector<int64_t> shape, const std::vector<float>& values) {
  ref::Tensor64 t(std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.data[i] = values[i];
  return t;
}

// Distinct values in (-1, 1), shuffled, none closer to 0 or to each other
// than about 0.5/count: away from ties in max pooling and from relu's kink.
std::vector<float> distinctValues(size_t count, std::mt19937& rng) {
  std::vector<float> values(count);
  for (size_t k = 0; k < count; ++k)
    values[k] = static_cast<float>(-1.0 + 2.0 * (k + 0.25) / count);
  std::shuffle(values.begin(), values.end(), rng);
  return values;
}

std::vector<float> uniformValues(size_t count, std::mt19937& rng, double low, double high) {
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<float> values(count);
  for (float& v : values) v = static_cast<float>(dist(rng));
  return values;
}

// Weights with variance 1/fan_in (activations keep their scale), biases
// and batchnorm's parameters in plausible ranges.
std::vector<float> initialParam(const Layer& layer, const ParamSpec& spec, std::mt19937& rng) {
  size_t count = static_cast<size_t>(spec.elements());
  if (layer.kind == LayerKind::BatchNorm) {
    if (spec.name == "weight") return uniformValues(count, rng, 0.5, 1.5);
    if (spec.name == "running_var") return uniformValues(count, rng, 0.5, 1.5);
    return uniformValues(count, rng, -0.5, 0.5);
  }
  if (spec.name == "bias") return uniformValues(count, rng, -0.5, 0.5);
  double fanIn = double(spec.elements()) / double(spec.shape[0]);
  double bound = std::sqrt(3.0 / fanIn);
  return uniformValues(count, rng, -bound, bound);
}

Problem makeProblem(const GradientCase& c, uint32_t seed = 20240611) {
  Problem p;
  p.net = test::mustAnalyze(
      fmt::format("network t\ninput {}\n{}\ntrain loss={}\n", c.input, c.layers, c.loss));
  p.loss = c.loss;
  p.batch = c.batch;
  std::mt19937 rng(seed);
  p.inputShape = {c.batch};
  p.inputShape.insert(p.inputShape.end(), p.net.inputShape.dims.begin(),
                      p.net.inputShape.dims.end());
  p.outputShape = {c.batch};
  const Shape& out = p.net.outputShape();
  p.outputShape.insert(p.outputShape.end(), out.dims.begin(), out.dims.end());
  p.input = distinctValues(ref::Tensor::count(p.inputShape), rng);
  p.data.input = toTensor64(p.inputShape, p.input);
  for (const Layer& layer : p.net.layers)
    for (const ParamSpec& spec : layer.params) {
      p.params.push_back(initialParam(layer, spec, rng));
      p.paramNames.push_back(layer.name + "." + spec.name);
      p.paramSpecs.push_back(&spec);
      p.data.params[p.paramNames.back()] = toTensor64(spec.shape, p.params.back());
    }
  if (p.loss == "mse") {
    p.targets = uniformValues(ref::Tensor::count(p.outputShape), rng, -1, 1);
    p.data.targets = toTensor64(p.outputShape, p.targets);
  } else {
    std::uniform_int_distribution<int> label(0, static_cast<int>(out.elements()) - 1);
    for (int n = 0; n < c.batch; ++n) p.labels.push_back(label(rng));
    p.data.labels.assign(p.labels.begin(), p.labels.end());
  }
  return p;
}

std::vector<int> reversed(const std::vector<int64_t>& shape) {
  return std::vector<int>(shape.rbegin(), shape.rend());
}

// A Halide buffer over row-major values: PyTorch's dimensions reversed.
Halide::Buffer<float> view(std::vector<float>& values, const std::vector<int64_t>& shape) {
  return Halide::Buffer<float>(values.data(), reversed(shape));
}

// "[n, c, y, x]" of a row-major index.
std::string coordinates(const std::vector<int64_t>& shape, size_t index) {
  std::vector<int64_t> coords(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    coords[d] = static_cast<int64_t>(index % shape[d]);
    index /= shape[d];
  }
  return fmt::format("[{}]", fmt::join(coords, ", "));
}

void bindInputs(Problem& p, LoweredTraining& training, uint32_t dropoutSeed) {
  training.network.input.set(view(p.input, p.inputShape));
  for (size_t i = 0; i < p.params.size(); ++i)
    training.network.params[i].set(view(p.params[i], p.paramSpecs[i]->shape));
  if (p.loss == "mse")
    training.targets.set(view(p.targets, p.outputShape));
  else
    training.labels.set(Halide::Buffer<int32_t>(p.labels.data(), p.batch));
  training.dropoutSeed.set(dropoutSeed);
}

// A value in the internal layout f(c, x, y, n), realized as is.
struct ValueView {
  Halide::Func func;
  std::vector<int> extents;  // (C, W, H, N); W = H = 1 when flat
};

ValueView internalView(const Halide::Func& value, const Shape& shape, int batch,
                       const std::string& name) {
  const auto& [c, x, y, n] = layerVars();
  Halide::Func view(name);
  view(c, x, y, n) = value(c, x, y, n);
  int W = shape.isImage() ? static_cast<int>(shape.width()) : 1;
  int H = shape.isImage() ? static_cast<int>(shape.height()) : 1;
  return {view, {static_cast<int>(shape.channels()), W, H, batch}};
}

// The NCHW (row-major) order of an internal-layout buffer.
std::vector<double> rowMajor(const Halide::Buffer<float>& b) {
  int C = b.dim(0).extent(), W = b.dim(1).extent(), H = b.dim(2).extent(), N = b.dim(3).extent();
  std::vector<double> out(b.number_of_elements());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) out[((size_t(n) * C + c) * H + y) * W + x] = b(c, x, y, n);
  return out;
}

struct TrainingRun {
  double loss = 0;
  std::vector<Halide::Buffer<float>> paramOutputs;  // row-major in PyTorch's layout
  Halide::Buffer<float> inputGradient, output;      // NCHW
  std::vector<Halide::Buffer<float>> extras;
};

// Realizes the loss, every parameter output, the input gradient, the output
// and `extras` in one pipeline (one JIT compile).
TrainingRun realizeTraining(Problem& p, LoweredTraining& training, const Halide::Target& target,
                            const std::vector<ValueView>& extras) {
  std::vector<Halide::Func> outputs = {training.loss};
  std::vector<Halide::Buffer<>> buffers = {Halide::Buffer<float>::make_scalar()};
  for (size_t i = 0; i < training.paramOutputs.size(); ++i) {
    outputs.push_back(training.paramOutputs[i]);
    buffers.push_back(Halide::Buffer<float>(reversed(p.paramSpecs[i]->shape)));
  }
  outputs.push_back(training.inputGradient);
  buffers.push_back(Halide::Buffer<float>(reversed(p.inputShape)));
  outputs.push_back(training.output);
  buffers.push_back(Halide::Buffer<float>(reversed(p.outputShape)));
  for (const ValueView& extra : extras) {
    outputs.push_back(extra.func);
    buffers.push_back(Halide::Buffer<float>(extra.extents));
  }
  Halide::Pipeline pipeline(outputs);
  Halide::Realization realization(buffers);
  pipeline.realize(realization, target);
  TrainingRun run;
  size_t next = 0;
  run.loss = Halide::Buffer<float>(buffers[next++])();
  for (size_t i = 0; i < training.paramOutputs.size(); ++i)
    run.paramOutputs.push_back(buffers[next++]);
  run.inputGradient = buffers[next++];
  run.output = buffers[next++];
  while (next < buffers.size()) run.extras.push_back(buffers[next++]);
  return run;
}

// The forward's dropout masks, read back as output/input of each dropout
// layer with rate > 0 (inputs are nonzero); each element must be 0 or
// 1/(1-rate).
struct DropoutProbe {
  int layer;
  size_t inView, outView;  // indices into the run's extras
};

std::vector<DropoutProbe> addDropoutViews(const Problem& p, const LoweredTraining& training,
                                          std::vector<ValueView>& extras) {
  std::vector<DropoutProbe> probes;
  for (size_t i = 0; i < p.net.layers.size(); ++i) {
    const Layer& layer = p.net.layers[i];
    if (layer.kind != LayerKind::Dropout || layer.floatAttr("rate") == 0) continue;
    int from = layer.inputs[0];
    const LoweredValue& in =
        from == kInputIndex ? training.network.inputValue : training.network.layers[from].value;
    probes.push_back({static_cast<int>(i), extras.size(), extras.size() + 1});
    extras.push_back(internalView(in.func, in.shape, p.batch, fmt::format("dropout_in_view{}", i)));
    extras.push_back(internalView(training.network.layers[i].value.func, layer.outputShape, p.batch,
                                  fmt::format("dropout_out_view{}", i)));
  }
  return probes;
}

// Sets the reference's masks from the run; returns how many elements were
// neither dropped nor kept at 1/(1-rate) (must be none) and the kept share.
std::pair<size_t, double> readDropoutMasks(Problem& p, const TrainingRun& run,
                                           const std::vector<DropoutProbe>& probes) {
  size_t bad = 0, kept = 0, total = 0;
  for (const DropoutProbe& probe : probes) {
    double rate = p.net.layers[probe.layer].floatAttr("rate");
    double keepScale = double(1.0f / (1.0f - static_cast<float>(rate)));
    std::vector<double> in = rowMajor(run.extras[probe.inView]),
                        out = rowMajor(run.extras[probe.outView]);
    std::vector<int64_t> shape = {p.batch};
    const Shape& s = p.net.layers[probe.layer].outputShape;
    shape.insert(shape.end(), s.dims.begin(), s.dims.end());
    ref::Tensor64 mask(shape);
    for (size_t i = 0; i < in.size(); ++i) {
      double ratio = out[i] / in[i];
      if (std::abs(ratio) < 1e-6) {
        mask.data[i] = 0;
      } else if (std::abs(ratio - keepScale) < 1e-5 * keepScale) {
        mask.data[i] = keepScale;
        ++kept;
      } else {
        mask.data[i] = ratio;
        ++bad;
      }
      ++total;
    }
    p.data.dropoutMasks[probe.layer] = std::move(mask);
  }
  return {bad, total ? double(kept) / double(total) : 1.0};
}

struct TensorComparison {
  std::string name;
  double worst = 0;  // relative to the tensor's gradient scale
  std::vector<std::string> mismatches;
};

// Central differences of the reference loss at every coordinate of a small
// tensor, else at kProbesPerTensor (a random sample and the largest gradient).
TensorComparison compareWithDifferences(Problem& p, const std::string& name,
                                        std::vector<double>& values,
                                        const std::vector<int64_t>& shape,
                                        const Halide::Buffer<float>& got, double scaleFloor,
                                        std::mt19937& rng) {
  size_t count = values.size();
  std::vector<size_t> probes(count);
  std::iota(probes.begin(), probes.end(), 0);
  double scale = 0;
  size_t largest = 0;
  for (size_t i = 0; i < count; ++i)
    if (std::abs(got.data()[i]) > scale) scale = std::abs(got.data()[largest = i]);
  if (count > kProbeEverywhereUpTo) {
    std::shuffle(probes.begin(), probes.end(), rng);
    probes.resize(kProbesPerTensor - 1);
    probes.push_back(largest);
  }
  std::vector<double> expected;
  for (size_t i : probes) {
    double saved = values[i];
    values[i] = saved + kStep;
    double plus = ref::referenceLoss(p.net, p.loss, p.data);
    values[i] = saved - kStep;
    double minus = ref::referenceLoss(p.net, p.loss, p.data);
    values[i] = saved;
    expected.push_back((plus - minus) / (2 * kStep));
    scale = std::max(scale, std::abs(expected.back()));
  }
  TensorComparison result{name};
  scale = std::max({scale, scaleFloor, 1e-12});
  for (size_t k = 0; k < probes.size(); ++k) {
    double have = got.data()[probes[k]];
    double error = std::abs(have - expected[k]) / scale;
    if (!(error <= result.worst)) result.worst = std::isnan(error) ? INFINITY : error;
    if (!(error <= kTolerance) && result.mismatches.size() < 6)
      result.mismatches.push_back(
          fmt::format("{} at {}: got {:.7g}, expected {:.7g} (scale {:.3g})", name,
                      coordinates(shape, probes[k]), have, expected[k], scale));
  }
  return result;
}

// The largest difference between two buffers of the same shape, relative
// to `want`'s largest magnitude, with the first few mismatches.
double relativeDifference(const Halide::Buffer<float>& got, const std::vector<double>& want,
                          const std::vector<int64_t>& shape, double tolerance,
                          const std::string& name, std::vector<std::string>& mismatches,
                          double scaleFloor = 1e-8) {
  double scale = scaleFloor, worst = 0;
  for (double v : want) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < want.size(); ++i) {
    double error = std::abs(double(got.data()[i]) - want[i]) / scale;
    if (!(error <= worst)) worst = std::isnan(error) ? INFINITY : error;
    if (!(error <= tolerance) && mismatches.size() < 6)
      mismatches.push_back(fmt::format("{} at {}: got {:.7g}, expected {:.7g} (scale {:.3g})", name,
                                       coordinates(shape, i), got.data()[i], want[i], scale));
  }
  return worst;
}

double largestMagnitude(const Halide::Buffer<float>& b) {
  double largest = 0;
  for (size_t i = 0; i < b.number_of_elements(); ++i)
    largest = std::max(largest, double(std::abs(b.data()[i])));
  return largest;
}

bool reportRequested() {
  return std::getenv("CNNC_GRADIENT_REPORT") != nullptr;
}

struct CaseResult {
  double worstGradient = 0, lossError = 0, statisticsError = 0;
  TrainingRun run;
};

// The whole check of one case on one target; failures name the tensor,
// the coordinate, the value and the reference.
CaseResult checkCase(const GradientCase& c, const Halide::Target& target) {
  Problem p = makeProblem(c);
  LoweredTraining training = lowerTraining(p.net);
  scheduleTraining(p.net, training, ScheduleOptions{target, c.batch == 1});
  bindInputs(p, training, /*dropoutSeed=*/7);
  std::vector<ValueView> extras;
  std::vector<DropoutProbe> dropouts = addDropoutViews(p, training, extras);
  CaseResult result;
  result.run = realizeTraining(p, training, target, extras);
  const TrainingRun& run = result.run;

  auto [badMask, keptShare] = readDropoutMasks(p, run, dropouts);
  CHECK(badMask == 0);
  if (!dropouts.empty()) {
    double rate = p.net.layers[dropouts[0].layer].floatAttr("rate");
    CAPTURE(keptShare, rate);
    CHECK(std::abs(keptShare - (1 - rate)) < 0.3);
  }

  double expectedLoss = ref::referenceLoss(p.net, p.loss, p.data);
  result.lossError = std::abs(run.loss - expectedLoss) / std::max(std::abs(expectedLoss), 1e-6);
  CAPTURE(run.loss, expectedLoss);
  CHECK(result.lossError < 1e-5);

  // Batchnorm's running statistics: PyTorch's update, the unbiased
  // variance of the batch.
  std::vector<ref::Tensor64> values = ref::evaluateTraining(p.net, p.data);
  std::vector<std::string> mismatches;
  for (size_t i = 0, first = 0; i < p.net.layers.size();
       first += p.net.layers[i].params.size(), ++i) {
    const Layer& layer = p.net.layers[i];
    if (layer.kind != LayerKind::BatchNorm) continue;
    int from = layer.inputs[0];
    ref::ChannelStatistics stats =
        ref::channelStatistics(from == kInputIndex ? p.data.input : values[from]);
    double momentum = layer.floatAttr("momentum");
    std::vector<double> mean, variance;
    for (size_t ch = 0; ch < stats.mean.size(); ++ch) {
      mean.push_back((1 - momentum) * p.params[first + 2][ch] + momentum * stats.mean[ch]);
      variance.push_back((1 - momentum) * p.params[first + 3][ch] +
                         momentum * stats.unbiasedVariance[ch]);
    }
    std::vector<int64_t> shape = {int64_t(mean.size())};
    result.statisticsError =
        std::max({result.statisticsError,
                  relativeDifference(run.paramOutputs[first + 2], mean, shape, 1e-5,
                                     layer.name + ".running_mean", mismatches),
                  relativeDifference(run.paramOutputs[first + 3], variance, shape, 1e-5,
                                     layer.name + ".running_var", mismatches)});
  }

  // Every trainable parameter's gradient and the input's.
  double largest = largestMagnitude(run.inputGradient);
  for (size_t i = 0; i < p.params.size(); ++i)
    if (p.paramSpecs[i]->trainable)
      largest = std::max(largest, largestMagnitude(run.paramOutputs[i]));
  std::mt19937 rng(99);
  std::vector<TensorComparison> comparisons;
  for (size_t i = 0; i < p.params.size(); ++i) {
    if (!p.paramSpecs[i]->trainable) continue;
    ref::Tensor64& tensor = p.data.params[p.paramNames[i]];
    comparisons.push_back(compareWithDifferences(p, p.paramNames[i], tensor.data, tensor.shape,
                                                 run.paramOutputs[i], kScaleFloor * largest, rng));
  }
  comparisons.push_back(compareWithDifferences(p, "input", p.data.input.data, p.inputShape,
                                               run.inputGradient, kScaleFloor * largest, rng));
  std::string summary;
  for (const TensorComparison& comparison : comparisons) {
    result.worstGradient = std::max(result.worstGradient, comparison.worst);
    summary += fmt::format(" {}={:.2e}", comparison.name, comparison.worst);
    mismatches.insert(mismatches.end(), comparison.mismatches.begin(), comparison.mismatches.end());
  }
  if (reportRequested())
    std::printf("%s | %s | gradient %.2e (%s) | loss %.2e | statistics %.2e\n",
                target.to_string().c_str(), caseLabel(c).c_str(), result.worstGradient,
                summary.c_str() + 1, result.lossError, result.statisticsError);
  for (const std::string& mismatch : mismatches) FAIL_CHECK(mismatch);
  CHECK(result.worstGradient < kTolerance);
  CHECK(result.statisticsError < 1e-5);
  return result;
}

void checkGroup(const std::string& group) {
  Halide::Target host = Halide::get_jit_target_from_environment();
  for (const GradientCase& c : kCases) {
    if (group != c.group) continue;
    DYNAMIC_SECTION(caseLabel(c)) {
      checkCase(c, host);
    }
  }
}

}  // namespace

TEST_CASE("gradient: conv2d with each activation against finite differences", "[gradient]") {
  checkGroup("conv2d");
}
TEST_CASE("gradient: max, average and global pooling against finite differences", "[gradient]") {
  checkGroup("pooling");
}
TEST_CASE("gradient: flatten and dense against finite differences", "[gradient]") {
  checkGroup("dense");
}
TEST_CASE("gradient: batchnorm in training mode and its running statistics", "[gradient]") {
  checkGroup("batchnorm");
}
TEST_CASE("gradient: dropout against finite differences through the forward's mask", "[gradient]") {
  checkGroup("dropout");
}
TEST_CASE("gradient: relu, leaky_relu, sigmoid and tanh against finite differences", "[gradient]") {
  checkGroup("activations");
}
TEST_CASE("gradient: softmax under mse, and cross_entropy with and without a trailing softmax",
          "[gradient]") {
  checkGroup("softmax");
}
TEST_CASE("gradient: add and concat against finite differences", "[gradient]") {
  checkGroup("add_concat");
}

TEST_CASE("gradient: every kind is exercised", "[gradient]") {
  for (const auto& info : layerKinds()) {
    bool covered = false;
    for (const GradientCase& c : kCases)
      covered = covered || std::string(c.layers).find(info.name) != std::string::npos;
    CAPTURE(info.name);
    CHECK(covered);
  }
}

// Inverted dropout: where an element is kept its gradient is the upstream
// gradient times 1/(1-rate), elsewhere 0, so the input gradient over the
// upstream gradient equals the output over the input, elementwise.
TEST_CASE("gradient: dropout's gradient is the forward's mask times the upstream gradient",
          "[gradient]") {
  Halide::Target host = Halide::get_jit_target_from_environment();
  for (const char* rate : {"0", "0.3", "0.7"}) {
    std::string layers = fmt::format("dropout rate={}", rate);
    GradientCase c{"dropout", "4x7x5", layers.c_str(), 3, "mse"};
    DYNAMIC_SECTION("rate " << rate) {
      Problem p = makeProblem(c);
      LoweredTraining training = lowerTraining(p.net);
      scheduleTraining(p.net, training, ScheduleOptions{host, false});
      bindInputs(p, training, /*dropoutSeed=*/12345);
      TrainingRun run = realizeTraining(p, training, host, {});
      size_t count = p.input.size(), dropped = 0, wrong = 0;
      for (size_t i = 0; i < count; ++i) {
        double forwardRatio = double(run.output.data()[i]) / p.input[i];
        double upstream = 2.0 * (double(run.output.data()[i]) - p.targets[i]) / double(count);
        double gradientRatio = double(run.inputGradient.data()[i]) / upstream;
        if (forwardRatio == 0) ++dropped;
        if (std::abs(gradientRatio - forwardRatio) > 1e-5 * std::max(1.0, std::abs(forwardRatio))) {
          if (wrong++ < 5)
            FAIL_CHECK(fmt::format("element {}: output/input {:.7g}, gradient/upstream {:.7g}",
                                   coordinates(p.inputShape, i), forwardRatio, gradientRatio));
        }
      }
      CHECK(wrong == 0);
      double expectedRate = std::stod(rate);
      CAPTURE(dropped, count);
      if (expectedRate == 0)
        CHECK(dropped == 0);
      else
        CHECK(std::abs(double(dropped) / count - expectedRate) < 0.1);
    }
  }
}

// The oracle of DESIGN.md: Halide differentiates the lowered forward's loss
// by itself; the hand-derived gradients must agree at every coordinate.
// Both come from one lowering with every Func stored at root:
// propagate_adjoints' Funcs cannot be computed inside the loops that the
// training schedule gives the forward's. Halide 14 cannot differentiate an inline `maximum`
// ("depend on intermediate values"), so maxpool and a softmax before the loss are left to the
// finite differences, and cross_entropy is differentiated here in a form without the max: log(sum
// exp(logits)) - logits[label], the same function of the logits. A dense layer over an image
// (reading it in flatten order, through / and % of the feature index) is left out too: there
// propagate_adjoints' gradients were wrong (e.g. 16x5x5 -> dense units=7:
// zero at most input coordinates) where the hand-derived ones match the
// finite differences.
Halide::Func differentiableLoss(const Problem& p, const LoweredTraining& training) {
  if (p.loss == "mse") return training.loss;
  const auto& [c, x, y, n] = layerVars();
  const Layer& last = p.net.layers.back();
  int logitsLayer =
      last.kind == LayerKind::Softmax ? last.inputs[0] : static_cast<int>(p.net.layers.size()) - 1;
  const Halide::Func& logits = training.network.layers.at(logitsLayer).value.func;
  int classes = static_cast<int>(p.net.outputShape().elements());
  Halide::RDom r(0, classes, "oracle_r"), examples(0, p.batch, "oracle_n");
  Halide::Func total("oracle_total"), loss("oracle_loss");
  total(n) = Halide::sum(Halide::exp(logits(r, 0, 0, n)));
  Halide::Expr label = Halide::clamp(training.labels(examples), 0, classes - 1);
  loss() =
      Halide::sum(Halide::log(total(examples)) - logits(label, 0, 0, examples)) / float(p.batch);
  return loss;
}

// Every Func of the lowering stored at root: always a legal place, and
// nothing recomputed per consumer (unscheduled, the conv stages would be).
void computeEverythingAtRoot(LoweredTraining& training) {
  auto root = [](Halide::Func f) {
    if (f.defined()) f.compute_root();
  };
  root(training.network.inputValue.func);
  for (LoweredLayer& layer : training.network.layers) {
    root(layer.value.func);
    for (auto& [name, stage] : layer.stages) root(stage);
  }
  for (LayerGradients& layer : training.layers) {
    for (Halide::Func& f : layer.inputs) root(f);
    for (Halide::Func& f : layer.params) root(f);
    for (auto& [name, stage] : layer.stages) root(stage);
  }
  for (Halide::Func& f : training.gradOutputs) root(f);
  for (Halide::Func& f : training.lossStages) root(f);
  root(training.inputGradientInternal);
}

TEST_CASE("gradient: hand-derived gradients match Halide's propagate_adjoints", "[gradient]") {
  Halide::Target host = Halide::get_jit_target_from_environment();
  const char* selected[] = {
      "conv2d filters=7 kernel=3x5 stride=2x1 pad=1x2",
      "conv2d filters=9 kernel=3 groups=3 pad=1 activation=leaky_relu",
      "avgpool kernel=3 stride=2 pad=1",
      "global_avgpool",
      "dense units=13 bias=false activation=sigmoid",
      "batchnorm",
      "batchnorm eps=1e-3 momentum=0.3",
      "dense units=11 activation=tanh\ndropout rate=0.25\ndense units=4",
      "leaky_relu alpha=0.2",
      "sigmoid",
      "tanh",
      "dense units=5\nsoftmax",
      "a: conv2d filters=4 kernel=3 pad=1\nb: relu from=input\nadd from=a,b,input activation=relu",
      "a: dense units=5\nb: dense units=7 from=input\nconcat from=b,a",
  };
  for (const GradientCase& c : kCases) {
    if (std::find_if(std::begin(selected), std::end(selected), [&](const char* s) {
          return c.layers == std::string(s);
        }) == std::end(selected))
      continue;
    DYNAMIC_SECTION(caseLabel(c)) {
      Problem p = makeProblem(c);
      LoweredTraining training = lowerTraining(p.net);
      computeEverythingAtRoot(training);
      bindInputs(p, training, /*dropoutSeed=*/7);
      Halide::Derivative adjoints = Halide::propagate_adjoints(differentiableLoss(p, training));
      // Pairs of (hand-derived, Halide's) over the same domain.
      std::vector<Halide::Func> outputs;
      std::vector<Halide::Buffer<>> buffers;
      std::vector<std::string> names;
      std::vector<std::vector<int64_t>> shapes;
      auto add = [&](const Halide::Func& mine, const Halide::ImageParam& param,
                     const std::string& name, const std::vector<int64_t>& shape) {
        Halide::Func theirs = adjoints(Halide::Func(param));
        if (!theirs.defined()) {
          FAIL_CHECK("propagate_adjoints gives no derivative for " << name);
          return;
        }
        theirs.compute_root();
        outputs.push_back(mine);
        outputs.push_back(theirs);
        buffers.push_back(Halide::Buffer<float>(reversed(shape)));
        buffers.push_back(Halide::Buffer<float>(reversed(shape)));
        names.push_back(name);
        shapes.push_back(shape);
      };
      for (size_t i = 0; i < p.params.size(); ++i)
        if (p.paramSpecs[i]->trainable)
          add(training.paramOutputs[i], training.network.params[i], p.paramNames[i],
              p.paramSpecs[i]->shape);
      add(training.inputGradient, training.network.input, "input", p.inputShape);
      Halide::Realization realization(buffers);
      Halide::Pipeline(outputs).realize(realization, host);
      double worst = 0, largest = 0;
      for (const Halide::Buffer<float> mine : buffers)
        largest = std::max(largest, largestMagnitude(mine));
      std::vector<std::string> mismatches;
      for (size_t k = 0; k < names.size(); ++k) {
        Halide::Buffer<float> theirs = buffers[2 * k + 1];
        std::vector<double> want(theirs.data(), theirs.data() + theirs.number_of_elements());
        worst = std::max(worst, relativeDifference(buffers[2 * k], want, shapes[k], 1e-4, names[k],
                                                   mismatches, kScaleFloor * largest));
      }
      if (reportRequested()) std::printf("adjoints | %s | %.2e\n", caseLabel(c).c_str(), worst);
      for (const std::string& mismatch : mismatches) FAIL_CHECK(mismatch);
      CHECK(worst < 1e-4);
    }
  }
}

TEST_CASE("gradient: AVX2 and SSE targets compile and give the same gradients", "[gradient]") {
  const char* selected[] = {
      "conv2d filters=7 kernel=3x5 stride=2x1 pad=1x2",
      "conv2d filters=33 kernel=3 pad=1 activation=relu",
      "maxpool kernel=3 stride=2 pad=1",
      "avgpool kernel=3 stride=2 pad=1",
      "dense units=13 bias=false activation=sigmoid",
  };
  for (const char* layers : selected) {
    const GradientCase* found = nullptr;
    for (const GradientCase& c : kCases)
      if (c.layers == std::string(layers)) found = &c;
    REQUIRE(found);
    DYNAMIC_SECTION(caseLabel(*found)) {
      std::vector<TrainingRun> runs;
      for (const char* targetName :
           {"x86-64-linux-avx-avx2-f16c-fma-sse41", "x86-64-linux-sse41"}) {
        CAPTURE(targetName);
        runs.push_back(checkCase(*found, Halide::Target(targetName)).run);
      }
      // The two targets against each other, tensor by tensor.
      std::vector<std::string> mismatches;
      double worst = 0;
      for (size_t i = 0; i < runs[0].paramOutputs.size(); ++i) {
        const Halide::Buffer<float>& a = runs[0].paramOutputs[i];
        std::vector<double> want(a.data(), a.data() + a.number_of_elements());
        worst = std::max(
            worst, relativeDifference(runs[1].paramOutputs[i], want, {int64_t(want.size())}, 1e-5,
                                      fmt::format("param {}", i), mismatches));
      }
      const Halide::Buffer<float>& a = runs[0].inputGradient;
      std::vector<double> want(a.data(), a.data() + a.number_of_elements());
      worst =
          std::max(worst, relativeDifference(runs[1].inputGradient, want, {int64_t(want.size())},
                                             1e-5, "input", mismatches));
      for (const std::string& mismatch : mismatches) FAIL_CHECK("SSE against AVX2: " << mismatch);
      CHECK(worst < 1e-5);
    }
  }
}
