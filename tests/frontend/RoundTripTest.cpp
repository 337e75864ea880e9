// The IR printer's output parses back to the same IR, for every example.
#include <catch2/catch.hpp>

#include <filesystem>

#include "Helpers.h"
#include "IRPrinter.h"

using namespace cnnc;
using namespace cnnc::test;
namespace fs = std::filesystem;

static void checkRoundTrip(const Network& net) {
  std::string printed = printIR(net);
  CAPTURE(printed);
  Analysis reparsed = analyzeNet(printed, "printed.ir");
  REQUIRE(reparsed.net);
  CHECK(sameNetwork(net, *reparsed.net));
  CHECK(printIR(*reparsed.net) == printed);
}

TEST_CASE("ir: every example network survives print and parse", "[ir]") {
  fs::path examples = fs::path(CNNC_SOURCE_DIR) / "examples";
  int count = 0;
  for (const auto& entry : fs::directory_iterator(examples)) {
    if (entry.path().extension() != ".net") continue;
    DYNAMIC_SECTION(entry.path().filename().string()) {
      Diagnostics diags;
      std::optional<SourceFile> source;
      auto net = analyzeFile(entry.path().string(), diags, source);
      INFO(diags.render());
      REQUIRE(net);
      checkRoundTrip(*net);
    }
    ++count;
  }
  CHECK(count >= 9);
}

TEST_CASE("ir: keys that are easy to lose survive the round trip", "[ir]") {
  checkRoundTrip(mustAnalyze(
      "network n\ninput 3x17x13\n"
      "c: conv2d filters=6 kernel=3x5 stride=2x1 pad=same dilation=1x2 groups=3 bias=false "
      "activation=leaky_relu init=he_normal\n"
      "p: avgpool kernel=3 stride=1 pad=1\nb: batchnorm eps=1e-3 momentum=0.01\n"
      "a: add from=p,b activation=tanh\nd: dropout rate=0.25\nl: leaky_relu alpha=0.125\n"
      "x: concat from=a,l,d\ng: global_avgpool\nfc: dense units=7 init=xavier_uniform\nsoftmax\n"
      "train loss=cross_entropy optimizer=sgd momentum=0.9 nesterov=true weight_decay=5e-4 "
      "lr=0.1 lr_schedule=step step_size=3 gamma=0.5 batch=32 epochs=2 seed=7\n"));
  checkRoundTrip(mustAnalyze("network flat\ninput 784\ndense units=10\n"));
}

TEST_CASE("ir: changing any attribute changes the IR", "[ir]") {
  Network a = mustAnalyze("network n\ninput 784\ndense units=10\n");
  Network b = mustAnalyze("network n\ninput 784\ndense units=10 bias=false\n");
  Network c = mustAnalyze("network n\ninput 784\ndense units=11\n");
  CHECK_FALSE(sameNetwork(a, b));
  CHECK_FALSE(sameNetwork(a, c));
  CHECK(sameNetwork(a, mustAnalyze("network n\ninput 784 # same\ndense   units=10\n")));
}
