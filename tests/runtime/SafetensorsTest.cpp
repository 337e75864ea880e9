// safetensors: round trips, the reference layout, dtype conversions, files
// shared with an independent Python (PyTorch) writer and reader, reading
// from disk, and checking a file against a network's parameters.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include <sys/stat.h>

#include "Error.h"
#include "Safetensors.h"
#include "TestFiles.h"

using cnnc::Error;
using cnnc::testing::littleEndian64;
using cnnc::testing::rawFile;
using cnnc::testing::ScratchDirectory;
namespace safetensors = cnnc::safetensors;

namespace {

safetensors::File parseBytes(const std::string& bytes) {
  return safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                            "test.safetensors");
}

// Runs the Python reference reader/writer; its exit status is 0 when it found what it expected.
int runReference(const std::string& arguments) {
  std::string command = "/usr/bin/python3 '" + std::string(CNNC_SOURCE_DIR) +
                        "/tests/runtime/safetensors_reference.py' " + arguments;
  return std::system(command.c_str());
}

std::string shellQuoted(const std::string& path) {
  return "'" + path + "'";
}

std::string bytesOf(const std::vector<uint16_t>& values) {
  std::string out;
  for (uint16_t v : values) out += {static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)};
  return out;
}

std::string bytesOf(const std::vector<double>& values) {
  std::string out;
  for (double v : values) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    out += littleEndian64(bits);
  }
  return out;
}

uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

}  // namespace

TEST_CASE("safetensors: write then read gives back the tensors and metadata", "[safetensors]") {
  ScratchDirectory scratch;
  safetensors::File file;
  file.metadata = {{"format", "cnnc"}, {"network", "lenet5"}, {"architecture", "0123abcd"}};
  file.tensors = {{"fc.bias", "F32", {3}, {1.5f, -2.0f, 3.25f}},
                  {"conv.weight", "F32", {2, 1, 1, 2}, {1, 2, 3, 4}},
                  {"bn.running_var", "F32", {1}, {std::numeric_limits<float>::denorm_min()}}};
  std::string path = scratch.file("w.safetensors");
  safetensors::write(path, file);
  for (const safetensors::File& back :
       {safetensors::read(path), parseBytes(safetensors::serialize(file))}) {
    REQUIRE(back.tensors.size() == 3);
    CHECK(back.tensors[0].name == "bn.running_var");  // sorted by name
    CHECK(back.tensors[1].name == "conv.weight");
    CHECK(back.tensors[1].dtype == "F32");
    CHECK(back.tensors[1].shape == std::vector<int64_t>{2, 1, 1, 2});
    CHECK(back.tensors[1].data == std::vector<float>{1, 2, 3, 4});
    CHECK(back.find("fc.bias")->data == std::vector<float>{1.5f, -2.0f, 3.25f});
    CHECK(back.tensors[0].data[0] == std::numeric_limits<float>::denorm_min());
    CHECK(back.metadata == file.metadata);
  }
  CHECK(cnnc::testing::readBytes(path) == safetensors::serialize(file));
}

TEST_CASE("safetensors: the layout is the reference's", "[safetensors]") {
  safetensors::File file;
  file.metadata = {{"format", "cnnc"}};
  file.tensors = {{"b", "F32", {1}, {2.0f}}, {"a", "F32", {2}, {1.0f, -1.0f}}};
  std::string bytes = safetensors::serialize(file);
  // Metadata first, then tensors by name with their fields in the
  // reference's order, padded with spaces to a multiple of 8.
  std::string header = R"({"__metadata__":{"format":"cnnc"},)"
                       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  REQUIRE(bytes.size() == 8 + header.size() + 12);
  CHECK(bytes.substr(0, 8) == littleEndian64(header.size()));
  CHECK(bytes.substr(8, header.size()) == header);
  std::string data = bytes.substr(8 + header.size());
  CHECK(data == std::string("\x00\x00\x80\x3f\x00\x00\x80\xbf\x00\x00\x00\x40", 12));
  // Without metadata, no "__metadata__" key at all.
  file.metadata.clear();
  CHECK(safetensors::serialize(file).substr(8, 6) == R"({"a":{)");
}

TEST_CASE("safetensors: no tensors, scalars and empty tensors round trip", "[safetensors]") {
  safetensors::File none;
  std::string bytes = safetensors::serialize(none);
  CHECK(bytes == littleEndian64(8) + "{}      ");
  CHECK(parseBytes(bytes).tensors.empty());

  safetensors::File file;
  file.tensors = {{"scalar", "F32", {}, {7.0f}},
                  {"empty", "F32", {0, 3}, {}},
                  {"also.empty", "F32", {4, 0}, {}}};
  safetensors::File back = parseBytes(safetensors::serialize(file));
  REQUIRE(back.tensors.size() == 3);
  CHECK(back.find("scalar")->shape.empty());
  CHECK(back.find("scalar")->data == std::vector<float>{7.0f});
  CHECK(back.find("empty")->shape == std::vector<int64_t>{0, 3});
  CHECK(back.find("empty")->data.empty());
  CHECK(back.find("also.empty")->shape == std::vector<int64_t>{4, 0});
}

TEST_CASE("safetensors: F16, BF16 and F64 data are converted to float", "[safetensors]") {
  std::string halves =
      bytesOf(std::vector<uint16_t>{0x3C00, 0xC000, 0x0001, 0x7BFF, 0xFC00, 0x7E00});
  std::string brains = bytesOf(std::vector<uint16_t>{0x3FC0, 0xC040, 0x7F80});
  const double floatMax = std::numeric_limits<float>::max();
  // Just above FLT_MAX rounds down to it; from halfway to the next power of
  // two up, to infinity.
  std::string doubles = bytesOf(std::vector<double>{0.1, -1e300, 1e-50, floatMax * (1 + 1e-9),
                                                    floatMax + std::ldexp(1.0, 103)});
  std::string header = R"({"h":{"dtype":"F16","shape":[6],"data_offsets":[0,12]},)"
                       R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[12,18]},)"
                       R"("d":{"dtype":"F64","shape":[5],"data_offsets":[18,58]}})";
  safetensors::File file = parseBytes(rawFile(header, 0) + halves + brains + doubles);

  const auto& h = file.find("h")->data;
  REQUIRE(h.size() == 6);
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.0f);
  CHECK(h[2] == std::ldexp(1.0f, -24));  // the smallest subnormal half
  CHECK(h[3] == 65504.0f);               // the largest half
  CHECK(h[4] == -INFINITY);
  CHECK(std::isnan(h[5]));

  CHECK(file.find("b")->data == std::vector<float>{1.5f, -3.0f, INFINITY});

  const auto& d = file.find("d")->data;
  CHECK(d[0] == 0.1f);
  CHECK(d[1] == -INFINITY);  // beyond float's range
  CHECK(d[2] == 0.0f);
  CHECK(d[3] == std::numeric_limits<float>::max());
  CHECK(d[4] == INFINITY);
  CHECK(file.find("d")->dtype == "F64");
  CHECK(file.find("d")->isFloat());
}

TEST_CASE("safetensors: integer tensors keep their name and shape, without data", "[safetensors]") {
  std::string header =
      R"({"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
      R"("mask":{"dtype":"BOOL","shape":[2,2],"data_offsets":[8,12]}})";
  safetensors::File file = parseBytes(rawFile(header, 12));
  REQUIRE(file.tensors.size() == 2);
  CHECK(file.find("bn.num_batches_tracked")->dtype == "I64");
  CHECK(file.find("bn.num_batches_tracked")->shape.empty());
  CHECK(file.find("bn.num_batches_tracked")->data.empty());
  CHECK_FALSE(file.find("mask")->isFloat());
  CHECK(file.find("mask")->shape == std::vector<int64_t>{2, 2});
}

TEST_CASE("safetensors: tensors may be stored in any order, unknown fields passed over",
          "[safetensors]") {
  // Data order b, a; header order a, b; an extra field nested 100,000 deep
  // (skipped without recursion) and a null __metadata__ (the reference's
  // "none").
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string header =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8],"extra":)" + deep +
      R"(},"__metadata__":null,"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string data = std::string("\x00\x00\x00\x40", 4) + std::string("\x00\x00\x80\x3f", 4);
  std::string bytes = rawFile(header, 0) + data;
  ScratchDirectory scratch;
  std::string path = scratch.file("order.safetensors");
  cnnc::testing::writeBytes(path, bytes);
  for (const safetensors::File& file : {parseBytes(bytes), safetensors::read(path)}) {
    CHECK(file.find("a")->data == std::vector<float>{1.0f});
    CHECK(file.find("b")->data == std::vector<float>{2.0f});
    CHECK(file.metadata.empty());
  }
}

TEST_CASE("safetensors: a header naming many tensors is read in about linear time",
          "[safetensors]") {
  const int count = 100000;
  std::string header = "{";
  for (int i = 0; i < count; ++i)
    header += (i ? "," : "") + std::string("\"t") + std::to_string(i) +
              R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  header += "}";
  auto start = std::chrono::steady_clock::now();
  safetensors::File file = parseBytes(rawFile(header, 0));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(file.tensors.size() == count);
  CHECK(seconds < 20);  // a quadratic check of names would take hours
}

TEST_CASE("safetensors: writing refuses what a reader would refuse", "[safetensors]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("w.safetensors");
  auto refuses = [&](safetensors::File file, const std::string& fragment) {
    CHECK_THROWS_WITH(safetensors::serialize(file), Catch::Contains(fragment));
    CHECK_THROWS_WITH(safetensors::write(path, file),
                      Catch::Contains("cannot write '" + path + "': " + fragment));
  };
  safetensors::File file;
  file.tensors = {{"t", "F32", {4}, {1, 2}}};
  refuses(file, "tensor 't' has 2 values for shape [4]");
  file.tensors = {{"t", "F32", {1}, {1}}, {"t", "F32", {1}, {2}}};
  refuses(file, "tensor 't' appears twice");
  file.tensors = {{"t", "F32", {-1}, {}}};
  refuses(file, "tensor 't' has a negative dimension in shape [-1]");
  file.tensors = {{"t", "F32", {int64_t(1) << 62, 4}, {}}};
  refuses(file, "tensor 't': shape [4611686018427387904, 4] has too many elements");
  file.tensors = {{"__metadata__", "F32", {}, {1}}};
  refuses(file, "a tensor cannot be named '__metadata__'");
  file.tensors = {{"bad\xff", "F32", {}, {1}}};
  refuses(file, "tensor name \"bad");
  file.tensors.clear();
  file.metadata = {{"k", "\xc3"}};
  refuses(file, "metadata value of \"k\" is not valid UTF-8");
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(scratch.entries().empty());
}

TEST_CASE("safetensors: a file written from PyTorch tensors loads", "[safetensors][python]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("theirs.safetensors");
  REQUIRE(runReference("write " + shellQuoted(path)) == 0);
  safetensors::File file = safetensors::read(path);
  CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"}});

  const safetensors::Tensor* weight = file.find("conv.weight");
  REQUIRE(weight);
  CHECK(weight->shape == std::vector<int64_t>{2, 3, 1, 2});
  REQUIRE(weight->data.size() == 12);
  for (size_t i = 0; i < weight->data.size(); ++i) CHECK(weight->data[i] == 0.5f * i - 1.0f);
  CHECK(file.find("double")->data == std::vector<float>{0.25f, 1e-3f, INFINITY});
  CHECK(file.find("half")->data ==
        std::vector<float>{-1.0f, 0.5f, 2.0f, 65504.0f, std::ldexp(1.0f, -24)});
  const auto& brain = file.find("brain")->data;
  REQUIRE(brain.size() == 3);
  CHECK(brain[0] == 1.5f);
  CHECK(brain[1] == -3.0f);
  CHECK(brain[2] == Approx(1e30).epsilon(0.01));
  CHECK(file.find("bn.num_batches_tracked")->dtype == "I64");
  CHECK(file.find("scalar")->shape.empty());
  CHECK(file.find("scalar")->data == std::vector<float>{3.5f});
  CHECK(file.find("empty")->shape == std::vector<int64_t>{0, 3});
  CHECK(parseBytes(cnnc::testing::readBytes(path)).tensors.size() == 7);
}

TEST_CASE("safetensors: our file is read by the Python side, in the reference layout",
          "[safetensors][python]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("ours.safetensors");
  safetensors::File file;
  file.metadata = {{"format", "cnnc"}, {"note", "\xc3\xbc \"quoted\"\n"}};
  file.tensors = {{"x", "F32", {2, 3}, {0, 1, 2, 3, 4, 5}},
                  {"y", "F32", {1}, {-7.5f}},
                  {"odd \"name\" \xc3\xa9\t", "F32", {}, {std::ldexp(1.0f, -149)}}};
  safetensors::write(path, file);
  CHECK(runReference("check " + shellQuoted(path)) == 0);
}

TEST_CASE("safetensors: random PyTorch tensors survive a read and a write bit for bit",
          "[safetensors][python]") {
  ScratchDirectory scratch;
  std::string theirs = scratch.file("random.safetensors");
  std::string ours = scratch.file("again.safetensors");
  REQUIRE(runReference("random 7 " + shellQuoted(theirs)) == 0);
  safetensors::File file = safetensors::read(theirs);
  REQUIRE(file.find("special"));
  const auto& special = file.find("special")->data;
  REQUIRE(special.size() == 6);
  CHECK(std::isnan(special[0]));
  CHECK(bitsOf(special[3]) == 0x80000000u);  // -0.0
  safetensors::write(ours, file);
  CHECK(runReference("same " + shellQuoted(theirs) + " " + shellQuoted(ours)) == 0);
}

TEST_CASE("safetensors read: a missing file, a directory and a FIFO are refused by name",
          "[safetensors]") {
  ScratchDirectory scratch;
  std::string missing = scratch.file("missing.safetensors");
  CHECK_THROWS_WITH(safetensors::read(missing),
                    Catch::Contains("cannot open '" + missing + "': No such file or directory"));
  CHECK_THROWS_WITH(safetensors::read(scratch.path().string()),
                    Catch::Contains("'" + scratch.path().string() + "': it is a directory"));
  std::string fifo = scratch.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Refused at once rather than waiting for a writer.
  CHECK_THROWS_WITH(safetensors::read(fifo), Catch::Contains("'" + fifo + "': not a regular file"));
}

TEST_CASE("safetensors read: a truncated file names the tensor that runs past the end",
          "[safetensors]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("w.safetensors");
  safetensors::File file;
  file.tensors = {{"a", "F32", {100}, std::vector<float>(100, 1.0f)},
                  {"b", "F32", {100}, std::vector<float>(100, 2.0f)}};
  safetensors::write(path, file);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1);
  CHECK_THROWS_WITH(safetensors::read(path),
                    Catch::Contains("'" + path +
                                    "': tensor 'b': data_offsets [400, 800] end past "
                                    "the end of the data (799 bytes; is the file truncated?)"));
}

TEST_CASE("check: a file that fits passes", "[safetensors][check]") {
  safetensors::File file;
  file.tensors = {{"fc.weight", "F32", {10, 84}, std::vector<float>(840)},
                  {"fc.bias", "F16", {10}, std::vector<float>(10)},
                  {"bn.num_batches_tracked", "I64", {}, {}}};
  CHECK_NOTHROW(safetensors::check(file, {{"fc.weight", {10, 84}}, {"fc.bias", {10}}},
                                   "w.safetensors", {}, {".num_batches_tracked"}));
}

TEST_CASE("check: a missing tensor is named", "[safetensors][check]") {
  safetensors::File file;
  file.tensors = {{"fc.weight", "F32", {10, 84}, std::vector<float>(840)}};
  CHECK_THROWS_WITH(
      safetensors::check(file, {{"fc.weight", {10, 84}}, {"conv1.weight", {6, 1, 5, 5}}},
                         "w.safetensors"),
      "'w.safetensors': missing tensor 'conv1.weight'");
}

TEST_CASE("check: an unexpected tensor is named", "[safetensors][check]") {
  safetensors::File file;
  file.tensors = {{"fc.weight", "F32", {1}, {0}}, {"foo", "F32", {1}, {0}}};
  CHECK_THROWS_WITH(safetensors::check(file, {{"fc.weight", {1}}}, "w.safetensors"),
                    "'w.safetensors': unexpected tensor 'foo' (the network has no such parameter)");
  // A step counter is extra too unless the caller passes over its suffix.
  file.tensors = {{"fc.weight", "F32", {1}, {0}}, {"bn.num_batches_tracked", "I64", {}, {}}};
  CHECK_THROWS_WITH(safetensors::check(file, {{"fc.weight", {1}}}, "w.safetensors"),
                    Catch::Contains("unexpected tensor 'bn.num_batches_tracked'"));
}

TEST_CASE("check: a misshaped tensor is named with both shapes", "[safetensors][check]") {
  safetensors::File file;
  file.tensors = {{"fc1.weight", "F32", {10, 84}, std::vector<float>(840)}};
  CHECK_THROWS_WITH(safetensors::check(file, {{"fc1.weight", {84, 120}}}, "w.safetensors"),
                    "'w.safetensors': tensor 'fc1.weight' has shape [10, 84], expected [84, 120]");
  file.tensors = {{"b", "F32", {}, {0}}};
  CHECK_THROWS_WITH(safetensors::check(file, {{"b", {1}}}, "w.safetensors"),
                    Catch::Contains("tensor 'b' has shape [], expected [1]"));
}

TEST_CASE("check: optimizer state is refused unless the caller accepts it",
          "[safetensors][check]") {
  safetensors::File file;
  file.tensors = {{"fc.weight", "F32", {2}, {0, 0}},
                  {"optimizer.fc.weight.momentum", "F32", {2}, {0, 0}}};
  std::vector<safetensors::ExpectedTensor> expected = {{"fc.weight", {2}}};
  CHECK_THROWS_WITH(safetensors::check(file, expected, "w.safetensors"),
                    Catch::Contains("unexpected tensor 'optimizer.fc.weight.momentum' (optimizer "
                                    "state from a training checkpoint"));
  CHECK_NOTHROW(
      safetensors::check(file, expected, "ckpt.safetensors", {safetensors::kOptimizerPrefix}));
}

TEST_CASE("check: a tensor that is not floating point where a parameter is expected",
          "[safetensors][check]") {
  safetensors::File file;
  file.tensors = {{"fc.weight", "I64", {2}, {}}};
  CHECK_THROWS_WITH(safetensors::check(file, {{"fc.weight", {2}}}, "w.safetensors"),
                    "'w.safetensors': tensor 'fc.weight' has dtype I64, expected F32");
}
