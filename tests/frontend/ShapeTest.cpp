// Shape inference for every row of NET-FORMAT.md's layer table. Expected
// shapes come from the spec's formula worked by hand:
//   out = floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1
#include <catch2/catch.hpp>

#include "Helpers.h"
#include "LayerKinds.h"

using namespace cnnc;
using namespace cnnc::test;

struct ShapeCase {
  const char* input;
  const char* layers;  // statements after `input`
  const char* shape;   // the last layer's output
  int64_t params;      // the last layer's trainable parameters
};

static const ShapeCase kCases[] = {
    // conv2d
    {"3x32x32", "conv2d filters=8 kernel=3", "8x30x30", 8 * 3 * 9 + 8},
    {"3x32x32", "conv2d filters=8 kernel=3 bias=false", "8x30x30", 8 * 3 * 9},
    {"3x32x32", "conv2d filters=8 kernel=3 stride=2 pad=1", "8x16x16", 224},
    {"3x32x32", "conv2d filters=8 kernel=3 dilation=2", "8x28x28", 224},
    {"3x32x32", "conv2d filters=8 kernel=3x5 stride=1x2 pad=1x2", "8x32x16", 8 * 3 * 15 + 8},
    {"3x31x17", "conv2d filters=5 kernel=4x2 stride=3 pad=0x1", "5x10x6", 5 * 3 * 8 + 5},
    {"3x32x32", "conv2d filters=8 kernel=5 pad=same", "8x32x32", 8 * 3 * 25 + 8},
    {"3x31x31", "conv2d filters=8 kernel=3 stride=2 pad=same", "8x16x16", 224},
    {"3x30x30", "conv2d filters=8 kernel=3 dilation=2 pad=same", "8x30x30", 224},
    {"3x224x224", "conv2d filters=64 kernel=7 stride=2 pad=3", "64x112x112", 64 * 3 * 49 + 64},
    {"4x9x9", "conv2d filters=6 kernel=3 groups=2", "6x7x7", 6 * 2 * 9 + 6},
    {"8x9x9", "conv2d filters=8 kernel=3 groups=8 pad=1", "8x9x9", 8 * 1 * 9 + 8},
    {"1x5x5", "conv2d filters=2 kernel=5", "2x1x1", 2 * 25 + 2},
    // maxpool / avgpool: stride defaults to the kernel
    {"6x28x28", "maxpool kernel=2", "6x14x14", 0},
    {"6x7x7", "maxpool kernel=2", "6x3x3", 0},
    {"64x55x55", "maxpool kernel=3 stride=2", "64x27x27", 0},
    {"64x112x112", "maxpool kernel=3 stride=2 pad=1", "64x56x56", 0},
    {"2x10x9", "maxpool kernel=3x2 stride=1x3 pad=1x0", "2x10x3", 0},
    {"6x28x28", "avgpool kernel=2", "6x14x14", 0},
    {"3x11x11", "avgpool kernel=3 stride=2 pad=1", "3x6x6", 0},
    // global_avgpool, flatten
    {"512x7x7", "global_avgpool", "512x1x1", 0},
    {"16x5x5", "flatten", "400", 0},
    {"784", "flatten", "784", 0},
    // dense: a non-flat input is flattened implicitly
    {"784", "dense units=100", "100", 784 * 100 + 100},
    {"16x5x5", "dense units=120", "120", 400 * 120 + 120},
    {"10", "dense units=3 bias=false", "3", 30},
    // batchnorm: weight and bias train; running statistics do not
    {"64x56x56", "batchnorm", "64x56x56", 128},
    {"100", "batchnorm eps=1e-3 momentum=0.2", "100", 200},
    // dropout and activations keep the shape
    {"100", "dropout rate=0.3", "100", 0},
    {"100", "dropout rate=0", "100", 0},
    {"3x4x5", "relu", "3x4x5", 0},
    {"3x4x5", "leaky_relu alpha=0.2", "3x4x5", 0},
    {"3x4x5", "sigmoid", "3x4x5", 0},
    {"3x4x5", "tanh", "3x4x5", 0},
    {"10", "softmax", "10", 0},
    {"10x2x2", "softmax", "10x2x2", 0},
    // add and concat over from= lists
    {"8x6x6", "a: relu\nb: tanh from=input\nadd from=a,b,input activation=relu", "8x6x6", 0},
    {"8x6x6",
     "a: conv2d filters=3 kernel=1\nb: conv2d filters=5 kernel=3 pad=1 from=input\n"
     "concat from=a,b,input",
     "16x6x6", 0},
    {"10", "a: dense units=4\nb: dense units=6 from=input\nconcat from=b,a", "10", 0},
};

TEST_CASE("shapes: every layer kind follows the spec's output formula", "[shapes]") {
  for (const ShapeCase& c : kCases) {
    std::string text = fmt::format("network n\ninput {}\n{}\n", c.input, c.layers);
    CAPTURE(text);
    Network net = mustAnalyze(text);
    CHECK(net.output().outputShape.str() == c.shape);
    CHECK(net.output().paramCount() == c.params);
  }
}

TEST_CASE("shapes: every registered kind is covered by the table above", "[shapes]") {
  for (const auto& info : layerKinds()) {
    bool covered = false;
    for (const ShapeCase& c : kCases)
      covered = covered || std::string(c.layers).find(info.name) != std::string::npos;
    CAPTURE(info.name);
    CHECK(covered);
  }
}

TEST_CASE("shapes: pad=same resolves to dilation*(kernel-1)/2 on each axis", "[shapes]") {
  Network net =
      mustAnalyze("network n\ninput 3x20x20\nconv2d filters=2 kernel=5x3 dilation=1x2 pad=same\n");
  CHECK(net.layers[0].sizeAttr("pad") == Size2{2, 2});
  net = mustAnalyze("network n\ninput 3x20x20\nconv2d filters=2 kernel=7x1 pad=same\n");
  CHECK(net.layers[0].sizeAttr("pad") == Size2{3, 0});
}

TEST_CASE("shapes: parameters use PyTorch's names and layouts", "[shapes]") {
  Network net = mustAnalyze(
      "network n\ninput 4x9x9\nc: conv2d filters=6 kernel=3x2 groups=2\nb: batchnorm\nd: dense "
      "units=5\n");
  const auto& conv = net.layers[0].params;
  REQUIRE(conv.size() == 2);
  CHECK(conv[0].name == "weight");
  CHECK(conv[0].shape == std::vector<int64_t>{6, 2, 3, 2});
  CHECK(conv[1].shape == std::vector<int64_t>{6});
  const auto& bn = net.layers[1].params;
  REQUIRE(bn.size() == 4);
  CHECK(bn[2].name == "running_mean");
  CHECK_FALSE(bn[2].trainable);
  const auto& dense = net.layers[2].params;
  CHECK(dense[0].shape == std::vector<int64_t>{5, 6 * 7 * 8});
}

TEST_CASE("shapes: layers without a name are named KIND + count of that kind", "[shapes]") {
  Network net = mustAnalyze(
      "network n\ninput 1x28x28\nconv2d filters=2 kernel=3\nc: conv2d filters=2 kernel=3\n"
      "conv2d filters=2 kernel=3\nrelu\nflatten\ndense units=3\nrelu\n");
  std::vector<std::string> names;
  for (const auto& l : net.layers) names.push_back(l.name);
  CHECK(names == std::vector<std::string>{"conv2d1", "c", "conv2d3", "relu1", "flatten1", "dense1",
                                          "relu2"});
}

TEST_CASE("shapes: a layer reads the previous one unless from= says otherwise", "[shapes]") {
  Network net = mustAnalyze("network n\ninput 8\na: relu\nb: tanh\nc: add from=a,input\n");
  CHECK(net.layers[0].inputs == std::vector<int>{kInputIndex});
  CHECK(net.layers[1].inputs == std::vector<int>{0});
  CHECK(net.layers[2].inputs == std::vector<int>{0, kInputIndex});
}

TEST_CASE("shapes: forward FLOPs follow 2*K*(C/groups)*R*S*P*Q for convolutions", "[shapes]") {
  Network net = mustAnalyze("network n\ninput 128x102x82\nconv2d filters=128 kernel=3 groups=2\n");
  CHECK(net.layers[0].forwardFlops == Approx(2.0 * 128 * 64 * 3 * 3 * 100 * 80));
  net = mustAnalyze("network n\ninput 400\ndense units=120\n");
  CHECK(net.layers[0].forwardFlops == Approx(2.0 * 400 * 120));
}

TEST_CASE("shapes: defaults are filled for every key", "[shapes]") {
  Network net = mustAnalyze(
      "network n\ninput 1x8x8\nconv2d filters=2 kernel=3\nmaxpool kernel=3\n"
      "train loss=mse optimizer=adam\n");
  const Layer& conv = net.layers[0];
  CHECK(conv.sizeAttr("stride") == Size2{1, 1});
  CHECK(conv.sizeAttr("pad") == Size2{0, 0});
  CHECK(conv.intAttr("groups") == 1);
  CHECK(conv.boolAttr("bias"));
  CHECK(conv.identAttr("activation") == "none");
  CHECK(conv.identAttr("init") == "default");
  CHECK(net.layers[1].sizeAttr("stride") == Size2{3, 3});
  REQUIRE(net.train);
  CHECK(net.train->floatAttr("lr") == 0.01);
  CHECK(net.train->floatAttr("beta2") == 0.999);
  CHECK(net.train->intAttr("batch") == 64);
  CHECK(net.train->intAttr("epochs") == 10);
  CHECK_FALSE(net.train->has("momentum"));  // an SGD key does not apply to Adam
}
