// Every layer kind's forward pass, JIT-compiled with its default schedule,
// against the plain-loop reference over many shapes: odd and prime sizes,
// rectangular kernels, strides, padding, dilation, groups, batch 1 and more,
// and for AVX-512, AVX2 and SSE targets.
#include <catch2/catch.hpp>

#include <random>

#include "Helpers.h"
#include "LayerKinds.h"
#include "Lowering.h"
#include "NetworkSchedule.h"
#include "PreparedParams.h"
#include "ReferenceNetwork.h"

using namespace cnnc;
namespace ref = cnnc::reference;

namespace {

struct ForwardCase {
  const char* input;   // one example's shape
  const char* layers;  // the statements after `input`
  int batch;
};

ref::Tensor randomTensor(std::vector<int64_t> shape, std::mt19937& rng, float low = -1,
                         float high = 1) {
  ref::Tensor t(std::move(shape));
  std::uniform_real_distribution<float> dist(low, high);
  for (float& v : t.data) v = dist(rng);
  return t;
}

// A Halide buffer over a reference tensor: PyTorch's dimensions reversed.
Halide::Buffer<float> view(ref::Tensor& t) {
  std::vector<int> dims(t.shape.rbegin(), t.shape.rend());
  return Halide::Buffer<float>(t.data.data(), dims);
}

// The largest error relative to the output's scale, over every layer.
double compareWithReference(const std::string& text, int batch, const Halide::Target& target,
                            const ScheduleOverrides* overrides = nullptr) {
  Network net = test::mustAnalyze(text);
  std::mt19937 rng(1234);
  std::vector<int64_t> inShape = {batch};
  inShape.insert(inShape.end(), net.inputShape.dims.begin(), net.inputShape.dims.end());
  ref::Tensor input = randomTensor(inShape, rng);
  std::map<std::string, ref::Tensor> params;
  for (const Layer& layer : net.layers)
    for (const ParamSpec& p : layer.params) {
      bool variance = p.name == "running_var";
      params[layer.name + "." + p.name] =
          randomTensor(p.shape, rng, variance ? 0.5f : -1, variance ? 1.5f : 1);
    }
  std::vector<ref::Tensor> expected = ref::evaluate(net, input, params);

  ScheduleOptions options{target, batch == 1, overrides};
  options.examplesFused = true;
  options.writesApiOutput = true;
  std::vector<PreparedLayer> prepared =
      planPreparedLayers(net, overrides ? *overrides : ScheduleOverrides{}, {target}, false);
  LoweredNetwork lowered = lowerNetwork(net, Purpose::Inference, true, Halide::Expr(), {},
                                        convWeightBlocks(net, options), prepared);
  Halide::Func output = lowered.apiOutput(static_cast<int>(net.layers.size()) - 1);
  scheduleForward(net, lowered, options, output);
  lowered.input.set(view(input));
  size_t p = 0;
  std::vector<ref::Tensor*> paramRows;  // the parameter table's order
  for (const Layer& layer : net.layers)
    for (const ParamSpec& spec : layer.params) {
      paramRows.push_back(&params[layer.name + "." + spec.name]);
      lowered.params[p++].set(view(*paramRows.back()));
    }
  // The conv parameters, prepared as the runtime's PrepareCalls would.
  std::vector<Halide::Buffer<float>> preparedTensors;
  for (const PreparedLayer& conv : prepared) {
    if (conv.layer < 0) continue;
    PreparePipeline prepare = preparePipeline(net, prepared, conv.layer, target);
    std::vector<int> rows = callParameters(net, {}, {conv.layer});
    if (conv.batchNorm >= 0)
      for (int row : callParameters(net, {}, {conv.batchNorm})) rows.push_back(row);
    for (size_t i = 0; i < rows.size(); ++i) prepare.params[i].set(view(*paramRows[rows[i]]));
    Halide::Buffer<float> packed(conv.weightExtents(net)), bias(conv.channels());
    prepare.pipeline.realize({packed, bias}, target);
    preparedTensors.push_back(packed);
    preparedTensors.push_back(bias);
  }
  for (size_t t = 0; t < preparedTensors.size(); ++t)
    lowered.preparedParams[t].set(preparedTensors[t]);

  const ref::Tensor& want = expected.back();
  std::vector<int> extents(want.shape.rbegin(), want.shape.rend());
  Halide::Buffer<float> got = Halide::Pipeline(output).realize(extents, target);

  double scale = 0;
  for (float v : want.data) scale = std::max(scale, double(std::abs(v)));
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::abs(double(got.data()[i]) - want.data[i]));
  return worst / std::max(scale, 1e-6);
}

const ForwardCase kCases[] = {
    // conv2d: odd and prime sizes, rectangular kernels, strides, padding, dilation, groups
    {"1x28x28", "conv2d filters=6 kernel=5 pad=2 activation=relu", 3},
    {"3x13x11", "conv2d filters=5 kernel=3", 1},
    {"3x17x19", "conv2d filters=7 kernel=3x5 stride=2x1 pad=1x2", 2},
    {"4x23x7", "conv2d filters=8 kernel=2x3 stride=3 pad=1 bias=false activation=tanh", 1},
    {"2x29x31", "conv2d filters=3 kernel=3 dilation=2 pad=same activation=sigmoid", 2},
    {"6x11x13", "conv2d filters=9 kernel=3 groups=3 pad=1 activation=leaky_relu", 2},
    {"8x9x9", "conv2d filters=8 kernel=3 groups=8 stride=2", 1},
    {"32x15x15", "conv2d filters=48 kernel=1", 2},
    {"3x37x37", "conv2d filters=16 kernel=7 stride=2 pad=3", 1},
    {"19x8x8", "conv2d filters=33 kernel=3 pad=1 activation=relu", 5},
    // outputs past a core's L2, whose tiles are transposed into NCHW as stored
    {"3x67x71", "conv2d filters=64 kernel=3 pad=1 activation=relu", 1},
    {"5x41x43", "conv2d filters=80 kernel=3 pad=1", 2},
    // an unpadded NCHW input whose values each feed 576 products: copied first
    {"20x13x11", "conv2d filters=64 kernel=3", 2},
    // pooling
    {"6x28x28", "maxpool kernel=2", 2},
    {"5x13x11", "maxpool kernel=3 stride=2 pad=1", 1},
    {"3x10x9", "maxpool kernel=3x2 stride=1x3 pad=1x0", 3},
    {"6x28x28", "avgpool kernel=2", 1},
    {"5x13x11", "avgpool kernel=3 stride=2 pad=1", 2},
    {"7x7x5", "global_avgpool", 3},
    // flatten and dense
    {"5x3x4", "flatten", 2},
    {"16x5x5", "flatten\ndense units=12 activation=relu", 3},
    {"16x5x5", "dense units=7", 1},
    {"37", "dense units=13 bias=false activation=sigmoid", 4},
    {"784", "dense units=100 activation=relu\ndense units=10\nsoftmax", 1},
    {"300", "dense units=70", 1},
    // batch 1 with enough work for parallel tiles of units
    {"1031", "dense units=1000 activation=relu", 1},
    // batch N with several blocks of prepared weights and a partial last tile
    {"45", "dense units=150", 3},
    // batchnorm (a conv absorbs it at inference), dropout, activations
    {"4x9x7", "conv2d filters=6 kernel=3 bias=false\nbatchnorm\nrelu", 2},
    {"4x9x7", "batchnorm eps=1e-3", 2},
    {"23", "batchnorm", 3},
    {"23", "dropout rate=0.3", 2},
    {"3x5x7", "relu", 2},
    {"3x5x7", "leaky_relu alpha=0.2", 1},
    {"3x5x7", "sigmoid", 2},
    {"3x5x7", "tanh", 1},
    {"10", "softmax", 4},
    {"10x3x2", "softmax", 2},
    // add and concat
    {"4x6x5",
     "a: conv2d filters=4 kernel=3 pad=1\nb: relu from=input\nadd from=a,b,input activation=relu",
     2},
    {"4x6x5",
     "a: conv2d filters=3 kernel=1\nb: maxpool kernel=3 stride=1 pad=1 from=input\nconcat "
     "from=a,b,input",
     2},
    {"12", "a: dense units=5\nb: dense units=7 from=input\nconcat from=b,a", 3},
    // few filters: vectors along columns, rounded up past the width
    {"2x9x19", "conv2d filters=5 kernel=3 pad=1 activation=relu", 3},
    {"1x13x21", "conv2d filters=6 kernel=5 pad=2 dilation=2x1\nmaxpool kernel=2", 1},
    // a pool that reads fewer columns than the conv before it computes
    {"1x28x28",
     "conv2d filters=4 kernel=3 stride=2 activation=relu\nmaxpool kernel=2\ndense units=10", 2},
    // a 1x1 conv over the input with enough work for tasks of stored rows
    {"64x23x19", "conv2d filters=48 kernel=1 activation=relu", 3},
};

}  // namespace

TEST_CASE("forward: every layer kind matches the reference (host target)", "[forward]") {
  Halide::Target host = Halide::get_jit_target_from_environment();
  for (const ForwardCase& c : kCases) {
    std::string text = fmt::format("network t\ninput {}\n{}\n", c.input, c.layers);
    DYNAMIC_SECTION(c.input << " | " << c.layers << " | batch " << c.batch) {
      CHECK(compareWithReference(text, c.batch, host) < 1e-4);
    }
  }
}

TEST_CASE("forward: AVX2 and SSE targets compile and match too", "[forward]") {
  for (const char* targetName : {"x86-64-linux-avx-avx2-f16c-fma-sse41", "x86-64-linux-sse41"}) {
    Halide::Target target(targetName);
    for (size_t i : {0, 2, 5, 9, 10, 11, 12, 15, 21, 24, 31, 34, 43}) {
      const ForwardCase& c = kCases[i];
      std::string text = fmt::format("network t\ninput {}\n{}\n", c.input, c.layers);
      DYNAMIC_SECTION(targetName << " | " << c.layers) {
        CHECK(compareWithReference(text, c.batch, target) < 1e-4);
      }
    }
  }
}

TEST_CASE("forward: convolutions stay correct under other knob values", "[forward]") {
  Halide::Target host = Halide::get_jit_target_from_environment();
  const char* text =
      "network t\ninput 6x11x13\nc: conv2d filters=20 kernel=3 pad=1 groups=2 activation=relu\n";
  struct Knobs {
    int64_t vectorWidth, channelVectors, tileX, unroll;
    bool materialize, columns;
    int64_t tileY, taskRows;
    bool inputColumnsInnermost;
  };
  // task_rows: tasks of 2 rows, and of 5 over tiles 2 rows high (the last
  // task is cut short); it is ignored without a stored input.
  for (Knobs k :
       {Knobs{4, 1, 1, 1, false, false, 1, 3, false}, Knobs{8, 3, 7, 3, true, false, 1, 2, false},
        Knobs{16, 2, 32, 1, true, false, 2, 5, false}, Knobs{8, 1, 1, 1, false, true, 4, 0, false},
        Knobs{8, 2, 3, 1, true, false, 1, 2, true}, Knobs{16, 1, 4, 2, true, false, 2, 0, true}}) {
    ScheduleOverrides overrides = {{0,
                                    {{"vector_width", k.vectorWidth},
                                     {"channel_vectors", k.channelVectors},
                                     {"tile_x", k.tileX},
                                     {"reduction_unroll", k.unroll},
                                     {"materialize_input", k.materialize},
                                     {"vectorize_columns", k.columns},
                                     {"tile_y", k.tileY},
                                     {"task_rows", k.taskRows},
                                     {"input_columns_innermost", k.inputColumnsInnermost}}}};
    for (int batch : {1, 3}) {
      DYNAMIC_SECTION("vector " << k.vectorWidth << " x " << k.channelVectors << ", tile "
                                << k.tileX << "x" << k.tileY << (k.columns ? " along columns" : "")
                                << ", task rows " << k.taskRows
                                << (k.inputColumnsInnermost ? ", input columns innermost" : "")
                                << ", batch " << batch) {
        CHECK(compareWithReference(text, batch, host, &overrides) < 1e-4);
      }
    }
  }
}

TEST_CASE("forward: Winograd convolutions match the reference", "[forward]") {
  Halide::Target host = Halide::get_jit_target_from_environment();
  struct WinogradCase {
    const char* input;
    const char* layers;
    int layer;         // the conv that runs by Winograd
    int64_t tiles;     // winograd_tiles, or 0: the default
    int64_t taskRows;  // task_rows, or -1: the default
    bool byDefault;    // chosen without a schedule file (64 channels or more in and out)
  };
  const WinogradCase cases[] = {
      // the network's NCHW input, unpadded (read in place) and padded (stored per task)
      {"128x10x14", "conv2d filters=128 kernel=3 activation=relu", 0, 0, -1, true},
      {"20x10x14", "conv2d filters=40 kernel=3 pad=1", 0, 3, 2, false},
      // channels-innermost inputs, unpadded and padded, channels not a whole vector
      {"6x12x16", "a: conv2d filters=20 kernel=1\nconv2d filters=17 kernel=3", 1, 0, -1, false},
      {"5x12x10", "a: conv2d filters=24 kernel=1\nconv2d filters=36 kernel=3 pad=1 activation=relu",
       1, 1, 6, false},
      // a folded batchnorm; an output past L2, its tiles stored transposed into NCHW
      {"8x8x8", "conv2d filters=16 kernel=3 pad=1 bias=false\nbatchnorm\nrelu", 0, 2, -1, false},
      {"32x36x36", "conv2d filters=128 kernel=3 pad=1 activation=relu", 0, 0, 4, false},
  };
  for (const WinogradCase& c : cases) {
    std::string text = fmt::format("network t\ninput {}\n{}\n", c.input, c.layers);
    Network net = test::mustAnalyze(text);
    ScheduleOptions options{host, false, nullptr};
    CHECK(winogradConvs(net, options)[c.layer] == c.byDefault);
    std::vector<Attribute> knobs = {{"winograd", true}};
    if (c.tiles > 0) knobs.push_back({"winograd_tiles", c.tiles});
    if (c.taskRows >= 0) knobs.push_back({"task_rows", c.taskRows});
    ScheduleOverrides overrides = {{c.layer, knobs}};
    options.overrides = &overrides;
    REQUIRE(winogradConvs(net, options)[c.layer]);
    for (int batch : {1, 2}) {
      DYNAMIC_SECTION(c.input << " | " << c.layers << " | batch " << batch) {
        CHECK(compareWithReference(text, batch, host, &overrides) < 1e-4);
      }
    }
  }
  for (const char* targetName : {"x86-64-linux-avx-avx2-f16c-fma-sse41", "x86-64-linux-sse41"})
    for (int i : {1, 3}) {
      std::string text = fmt::format("network t\ninput {}\n{}\n", cases[i].input, cases[i].layers);
      ScheduleOverrides overrides = {{cases[i].layer, {{"winograd", true}}}};
      DYNAMIC_SECTION(targetName << " | " << cases[i].layers) {
        CHECK(compareWithReference(text, 2, Halide::Target(targetName), &overrides) < 1e-4);
      }
    }
}

TEST_CASE("forward: every kind is exercised", "[forward]") {
  for (const auto& info : layerKinds()) {
    bool covered = false;
    for (const ForwardCase& c : kCases)
      covered = covered || std::string(c.layers).find(info.name) != std::string::npos;
    CAPTURE(info.name);
    CHECK(covered);
  }
}
