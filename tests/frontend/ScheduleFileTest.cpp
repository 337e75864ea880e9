// Schedule files: knobs per layer in .net syntax, with located errors.
#include <catch2/catch.hpp>

#include "Helpers.h"
#include "ScheduleFile.h"

using namespace cnnc;

namespace {

const char* kNet =
    "network n\ninput 3x16x16\nconv1: conv2d filters=8 kernel=3\npool: maxpool kernel=2\n"
    "conv2: conv2d filters=16 kernel=3 pad=1\n";

struct Parsed {
  std::optional<ScheduleOverrides> overrides;
  std::vector<std::string> errors;
};

Parsed parseSchedule(const std::string& text) {
  Network net = test::mustAnalyze(kNet);
  Diagnostics diags;
  SourceFile source = SourceFile::fromText("s.sched", text, diags);
  Parsed parsed;
  parsed.overrides = parseScheduleFile(source, net, diags);
  for (const auto& d : diags.errors()) parsed.errors.push_back(fmt::format("{}:{}: {}", d.loc.line, d.loc.col, d.message));
  return parsed;
}

}  // namespace

TEST_CASE("schedule file: knobs per layer; layers not mentioned keep their defaults", "[schedule]") {
  Parsed parsed = parseSchedule("# tuned\nconv2: conv2d vector_width=8 tile_x=4 materialize_input=true\n");
  REQUIRE(parsed.overrides);
  REQUIRE(parsed.overrides->size() == 1);
  const auto& knobs = parsed.overrides->at(2);  // conv2 is the third layer
  REQUIRE(knobs.size() == 3);
  CHECK(knobs[0].key == "vector_width");
  CHECK(std::get<int64_t>(knobs[0].value) == 8);
  CHECK(std::get<bool>(knobs[2].value));
}

TEST_CASE("schedule file: every mistake is a located error", "[schedule]") {
  Parsed parsed = parseSchedule(
      "conv3: conv2d tile_x=4\n"
      "pool: conv2d tile_x=4\n"
      "conv1: conv2d tilex=3\n"
      "conv2: conv2d vector_width=12 tile_x=0\n"
      "pool: maxpool tile_x=2\n"
      "conv1: conv2d\n"
      "network n\n");
  CHECK_FALSE(parsed.overrides);
  CHECK(parsed.errors == std::vector<std::string>{
                             "1:1: network 'n' has no layer 'conv3'; did you mean 'conv1'?",
                             "2:7: layer 'pool' is a maxpool, not a conv2d",
                             "3:15: unknown knob 'tilex' for conv2d; did you mean 'tile_x'?",
                             "4:28: 'vector_width' must be 4, 8 or 16, got 12",
                             "4:38: 'tile_x' must be at least 1 and at most 32, got 0",
                             "5:15: unknown knob 'tile_x' for maxpool (maxpool layers have no knobs yet)",
                             "6:1: layer 'conv1' is scheduled twice in this file",
                             "7:1: expected 'LAYER: KIND knob=value ...'",
                         });
}

TEST_CASE("schedule file: winograd only where F(2x2, 3x3) fits", "[schedule]") {
  // conv1: 3x3 at stride 1 to a 14x14 output; conv2: a 7x7 output (odd).
  Parsed fits = parseSchedule("conv1: conv2d winograd=true winograd_tiles=7\n");
  REQUIRE(fits.overrides);
  CHECK(fits.overrides->at(0).size() == 2);
  Parsed odd = parseSchedule("conv2: conv2d winograd=true\nconv1: conv2d winograd=false\n");
  CHECK_FALSE(odd.overrides);
  CHECK(odd.errors == std::vector<std::string>{
                          "1:24: 'winograd' needs a 3x3 kernel at stride 1, without dilation or "
                          "groups, and an even output height and width; 'conv2' has kernel=3 "
                          "stride=1 dilation=1 groups=1 and a 7x7 output",
                      });
}
