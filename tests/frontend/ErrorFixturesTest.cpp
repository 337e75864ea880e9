// Programs that must fail: every tests/errors/X.net states the diagnostics
// it expects, as `# expect: LINE:COL: MESSAGE` lines (or in X.expect for
// files that cannot hold comments: empty, binary, overlong). The list must
// match exactly, in file order.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "Helpers.h"

using namespace cnnc;
using namespace cnnc::test;
namespace fs = std::filesystem;

static const fs::path kErrorsDir = fs::path(CNNC_SOURCE_DIR) / "tests" / "errors";

static std::string readBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

static std::vector<std::string> expectations(const fs::path& fixture) {
  fs::path sidecar = fs::path(fixture).replace_extension(".expect");
  std::string text = readBytes(fs::exists(sidecar) ? sidecar : fixture);
  std::vector<std::string> expected;
  std::istringstream lines(text);
  const std::string marker = "# expect: ";
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(marker, 0) == 0) expected.push_back(line.substr(marker.size()));
  return expected;
}

static std::vector<fs::path> fixtures() {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(kErrorsDir))
    if (entry.path().extension() == ".net") paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  return paths;
}

TEST_CASE("errors: each fixture gets exactly its expected diagnostics", "[errors]") {
  auto paths = fixtures();
  REQUIRE(paths.size() >= 40);
  for (const fs::path& path : paths) {
    DYNAMIC_SECTION(path.filename().string()) {
      std::vector<std::string> expected = expectations(path);
      REQUIRE_FALSE(expected.empty());
      Analysis result = analyzeNet(readBytes(path), path.filename().string());
      CHECK_FALSE(result.net.has_value());
      CHECK(result.errors == expected);
    }
  }
}

TEST_CASE("errors: diagnostics render as file:line:col, the line and a caret", "[errors]") {
  Analysis result = analyzeNet("network n\ninput 784\n\tdense  units=0\n", "f.net");
  CHECK(result.rendered ==
        "f.net:3:15: error: 'units' must be at least 1, got 0\n"
        "\tdense  units=0\n"
        "\t             ^\n");
  result = analyzeNet("network n\ninput 784\nreluu\n", "f.net");
  CHECK(result.rendered ==
        "f.net:3:1: error: unknown statement or layer kind 'reluu'; did you mean 'relu'?\n"
        "reluu\n"
        "^~~~~\n");
}

TEST_CASE("errors: a very long line is shown cut around the caret", "[errors]") {
  std::string padding(1000, ' ');
  Analysis result = analyzeNet("network n\ninput 784\ndense" + padding + "units=0\n", "f.net");
  REQUIRE(result.errors.size() == 1);
  std::istringstream lines(result.rendered);
  std::string header, source, caret;
  std::getline(lines, header);
  std::getline(lines, source);
  std::getline(lines, caret);
  CHECK(source.size() < 200);
  CHECK(caret.size() < 200);
  // The caret stands under the offending '0'.
  CHECK(source[caret.find('^')] == '0');
}
