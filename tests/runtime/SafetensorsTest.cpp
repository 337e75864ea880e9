// safetensors: round trips, files written by an independent Python writer,
// and one case per kind of malformed file, each refused with a message that
// names the field or tensor at fault.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "AtomicFile.h"
#include "Error.h"
#include "Safetensors.h"

using namespace cnnc;
namespace fs = std::filesystem;

namespace {

fs::path scratch() {
  fs::path dir = fs::temp_directory_path() / ("cnnc-runtime-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

// A file made of a header given as JSON text and `dataBytes` bytes of data.
std::string rawFile(const std::string& header, size_t dataBytes, uint64_t claimedLength = UINT64_MAX) {
  uint64_t length = claimedLength == UINT64_MAX ? header.size() : claimedLength;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return out + header + std::string(dataBytes, '\0');
}

safetensors::File parseBytes(const std::string& bytes) {
  return safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test.safetensors");
}

int runPython(const std::string& args) {
  std::string command = "/usr/bin/python3 " + std::string(CNNC_SOURCE_DIR) + "/tests/runtime/safetensors_peer.py " + args;
  return std::system(command.c_str());
}

}  // namespace

TEST_CASE("safetensors: write then read gives the same tensors and metadata", "[safetensors]") {
  safetensors::File file;
  file.metadata = {{"format", "cnnc"}, {"network", "n"}};
  file.tensors = {{"b.bias", "F32", {3}, {1.5f, -2.0f, 3.25f}}, {"a.weight", "F32", {2, 2}, {1, 2, 3, 4}}};
  std::string bytes = safetensors::serialize(file);
  CHECK((bytes.size() - 8) % 4 == 0);
  safetensors::File back = parseBytes(bytes);
  REQUIRE(back.tensors.size() == 2);
  CHECK(back.tensors[0].name == "a.weight");  // sorted by name
  CHECK(back.tensors[0].shape == std::vector<int64_t>{2, 2});
  CHECK(back.tensors[1].data == std::vector<float>{1.5f, -2.0f, 3.25f});
  CHECK(back.metadata == file.metadata);
}

TEST_CASE("safetensors: files from an independent Python writer load, ours read back there", "[safetensors]") {
  fs::path dir = scratch();
  std::string theirs = (dir / "theirs.safetensors").string();
  REQUIRE(runPython("write " + theirs) == 0);
  safetensors::File file = safetensors::read(theirs);
  REQUIRE(file.find("conv.weight"));
  const auto& w = *file.find("conv.weight");
  CHECK(w.shape == std::vector<int64_t>{2, 3, 1, 2});
  for (size_t i = 0; i < w.data.size(); ++i) CHECK(w.data[i] == Approx(0.5 * double(i) - 1.0));
  CHECK(file.find("half")->data == std::vector<float>{-1.0f, 0.5f, 2.0f});
  CHECK(file.find("double")->data == std::vector<float>{0.25f, 1e-3f});

  std::string ours = (dir / "ours.safetensors").string();
  safetensors::File mine;
  mine.metadata = {{"format", "cnnc"}};
  mine.tensors = {{"x", "F32", {2, 3}, {0, 1, 2, 3, 4, 5}}, {"y", "F32", {1}, {-7.5f}}};
  safetensors::write(ours, mine);
  CHECK(runPython("check " + ours) == 0);
  fs::remove_all(dir);
}

TEST_CASE("safetensors: every malformed file is refused, naming what is wrong", "[safetensors]") {
  struct Bad {
    const char* what;
    std::string bytes;
    const char* message;
  };
  const std::string good = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::vector<Bad> cases = {
      {"too short", std::string(5, '\0'), "too short for the header length"},
      {"header past the end", rawFile(good, 8, 1000), "runs past the end of the file"},
      {"huge header length", rawFile(good, 8, uint64_t(1) << 62), "runs past the end of the file"},
      {"invalid JSON", rawFile("{\"t\": [1, 2", 0), "header is not valid JSON"},
      {"invalid UTF-8", rawFile("{\"\xff\": 1}", 0), "header is not valid JSON"},
      {"not an object", rawFile("[1, 2, 3]", 0), "header is not a JSON object"},
      {"entry not an object", rawFile(R"({"t": 5})", 0), "tensor 't': entry is not an object"},
      {"missing dtype", rawFile(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", 8), "tensor 't': missing field 'dtype'"},
      {"missing shape", rawFile(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8), "tensor 't': missing field 'shape'"},
      {"missing offsets", rawFile(R"({"t":{"dtype":"F32","shape":[2]}})", 8), "missing field 'data_offsets'"},
      {"dtype not a string", rawFile(R"({"t":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8), "dtype is not a string"},
      {"unknown dtype", rawFile(R"({"t":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}})", 8), "dtype 'F128' is not supported"},
      {"shape not an array", rawFile(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8), "shape is not an array"},
      {"negative dimension", rawFile(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "not a non-negative integer"},
      {"fractional dimension", rawFile(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8), "not a non-negative integer"},
      {"overflowing shape", rawFile(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", 8), "overflows"},
      {"offsets not a pair", rawFile(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "data_offsets is not a pair"},
      {"reversed offsets", rawFile(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "are reversed"},
      {"truncated data", rawFile(good, 4), "past the end of the data"},
      {"size mismatch", rawFile(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "holds 8 bytes but shape [3] of F32 needs 12"},
      {"overlap", rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "overlaps"},
      {"gap", rawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "belong to no tensor"},
      {"trailing bytes", rawFile(good, 12), "belong to no tensor"},
      {"duplicate name", rawFile(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "tensor 't' appears twice"},
      {"metadata not a map", rawFile(R"({"__metadata__":[1]})", 0), "__metadata__ is not an object"},
      {"metadata value not a string", rawFile(R"({"__metadata__":{"k":1}})", 0), "__metadata__ value of 'k' is not a string"},
  };
  for (const Bad& bad : cases) {
    DYNAMIC_SECTION(bad.what) {
      try {
        parseBytes(bad.bytes);
        FAIL("accepted");
      } catch (const Error& e) {
        CAPTURE(e.what());
        CHECK(std::string(e.what()).find("test.safetensors") != std::string::npos);
        CHECK(std::string(e.what()).find(bad.message) != std::string::npos);
      }
    }
  }
}

TEST_CASE("safetensors: checking a file against a network's tensors", "[safetensors]") {
  safetensors::File file;
  file.tensors = {{"fc.weight", "F32", {10, 84}, std::vector<float>(840)},
                  {"fc.bias", "F32", {10}, std::vector<float>(10)},
                  {"bn.num_batches_tracked", "I64", {}, {}},
                  {"optimizer.fc.weight.momentum", "F32", {1}, {0}}};
  auto check = [&](std::vector<safetensors::ExpectedTensor> expected) {
    safetensors::check(file, expected, "w.safetensors", {"optimizer."}, {".num_batches_tracked"});
  };
  CHECK_NOTHROW(check({{"fc.weight", {10, 84}}, {"fc.bias", {10}}}));
  CHECK_THROWS_WITH(check({{"fc.weight", {84, 120}}, {"fc.bias", {10}}}),
                    Catch::Contains("tensor 'fc.weight' has shape [10, 84], expected [84, 120]"));
  CHECK_THROWS_WITH(check({{"fc.weight", {10, 84}}, {"fc.bias", {10}}, {"conv1.weight", {6, 1, 5, 5}}}),
                    Catch::Contains("missing tensor 'conv1.weight'"));
  CHECK_THROWS_WITH(check({{"fc.weight", {10, 84}}}),
                    Catch::Contains("unexpected tensor 'fc.bias' (the network has no such parameter)"));
}

TEST_CASE("atomic write: a failure leaves the old file and no temporary", "[atomic]") {
  fs::path dir = scratch() / "atomic";
  fs::create_directories(dir);
  std::string path = (dir / "weights.safetensors").string();
  writeFileAtomically(path, "old");
  // A tensor whose data does not fit its shape fails during serialization.
  safetensors::File broken;
  broken.tensors = {{"t", "F32", {4}, {1, 2}}};
  CHECK_THROWS_AS(safetensors::write(path, broken), Error);
  std::ifstream in(path);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(content == "old");
  // Writing into a directory that does not exist fails with its name.
  CHECK_THROWS_WITH(writeFileAtomically((dir / "missing" / "x").string(), "data"), Catch::Contains("missing/x"));
  size_t files = 0;
  for (auto& entry : fs::directory_iterator(dir)) files += entry.is_regular_file();
  CHECK(files == 1);
  fs::remove_all(dir.parent_path());
}
