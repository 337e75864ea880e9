// One case per kind of malformed safetensors file: each is refused, from
// memory and from disk, with a cnnc::Error that names the file and the field
// or tensor at fault.
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "Error.h"
#include "Safetensors.h"
#include "TestFiles.h"

using cnnc::Error;
using cnnc::testing::rawFile;
namespace safetensors = cnnc::safetensors;

namespace {

// A valid header: one F32 tensor of two values, 8 bytes of data.
const std::string kGood = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"t":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets +
         "}}";
}

void expectRefusedBy(const std::function<void()>& load, const std::string& source,
                     const std::string& fragment) {
  try {
    load();
    FAIL("the file was accepted");
  } catch (const Error& e) {
    std::string message = e.what();
    INFO("message: " << message);
    CHECK(message.find("'" + source + "'") != std::string::npos);
    CHECK(message.find(fragment) != std::string::npos);
  }
}

// Refused by parse() from memory and by read() from a file, with a message
// naming the source and containing `fragment`.
void expectRefused(const std::string& bytes, const std::string& fragment) {
  INFO("expected the message to contain: " << fragment);
  expectRefusedBy(
      [&] {
        safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                           "test.safetensors");
      },
      "test.safetensors", fragment);
  cnnc::testing::ScratchDirectory scratch;
  std::string path = scratch.file("bad.safetensors");
  cnnc::testing::writeBytes(path, bytes);
  expectRefusedBy([&] { safetensors::read(path); }, path, fragment);
}

}  // namespace

TEST_CASE("malformed: the good header used below is accepted", "[safetensors][malformed]") {
  std::string bytes = rawFile(kGood, 8);
  CHECK(safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x")
            .tensors.size() == 1);
}

TEST_CASE("malformed: file too short for the 8-byte length", "[safetensors][malformed]") {
  expectRefused("", "0 bytes, too short for the 8-byte header length");
  expectRefused(std::string(7, '\0'), "7 bytes, too short for the 8-byte header length");
}

TEST_CASE("malformed: header length past the end of the file", "[safetensors][malformed]") {
  expectRefused(rawFile(kGood, 8, 1000), "header length 1000 runs past the end of the file");
  expectRefused(rawFile(kGood, 8, kGood.size() + 9), "runs past the end of the file");
}

TEST_CASE("malformed: header length absurdly large", "[safetensors][malformed]") {
  expectRefused(rawFile(kGood, 8, uint64_t(1) << 62), "exceeds the format's limit");
  expectRefused(rawFile(kGood, 8, UINT64_MAX - 1), "exceeds the format's limit");
  expectRefused(rawFile(kGood, 8, safetensors::kMaxHeaderBytes + 1), "exceeds the format's limit");
}

TEST_CASE("malformed: header not valid JSON", "[safetensors][malformed]") {
  expectRefused(rawFile("", 0), "header is not valid JSON");
  // Reported as such even after a field that is wrong too.
  expectRefused(rawFile(R"({"t": [1, 2)", 0), "header is not valid JSON");
  expectRefused(rawFile(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x)", 8),
                "header is not valid JSON");
  expectRefused(rawFile(std::string("{\0}", 3), 0), "header is not valid JSON");
  expectRefused(rawFile(R"({'t': 1})", 0), "header is not valid JSON");
}

TEST_CASE("malformed: header not valid UTF-8", "[safetensors][malformed]") {
  expectRefused(rawFile("{\"\xff\":{}}", 0), "header is not valid JSON");
  expectRefused(rawFile("{\"t\xc3\":{}}", 0), "header is not valid JSON");  // cut sequence
  expectRefused(rawFile("{\"t\":{\"dtype\":\"\xed\xa0\x80\"}}", 0),         // a surrogate
                "header is not valid JSON");
  expectRefused(rawFile("\xef\xbb\xbf{}", 0),
                "header is not valid JSON: it starts with a byte order mark");
}

TEST_CASE("malformed: header not a JSON object", "[safetensors][malformed]") {
  expectRefused(rawFile("[1, 2, 3]", 0), "header is not a JSON object");
  expectRefused(rawFile(R"("text")", 0), "header is not a JSON object");
  expectRefused(rawFile("42", 0), "header is not a JSON object");
  expectRefused(rawFile("null", 0), "header is not a JSON object");
}

TEST_CASE("malformed: tensor entry not an object", "[safetensors][malformed]") {
  expectRefused(rawFile(R"({"t": 5})", 0), "tensor 't': entry is not an object");
  expectRefused(rawFile(R"({"t": ["F32", [2], [0, 8]]})", 8), "tensor 't': entry is not an object");
  expectRefused(rawFile(R"({"t": null})", 0), "tensor 't': entry is not an object");
}

TEST_CASE("malformed: tensor entry missing dtype, shape or data_offsets",
          "[safetensors][malformed]") {
  expectRefused(rawFile(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", 8),
                "tensor 't': missing field 'dtype'");
  expectRefused(rawFile(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8),
                "tensor 't': missing field 'shape'");
  expectRefused(rawFile(R"({"t":{"dtype":"F32","shape":[2]}})", 8),
                "tensor 't': missing field 'data_offsets'");
  expectRefused(rawFile(R"({"t":{}})", 0), "tensor 't': missing field 'dtype'");
}

TEST_CASE("malformed: dtype of the wrong JSON type", "[safetensors][malformed]") {
  expectRefused(rawFile(entry("4", "[2]", "[0,8]"), 8), "tensor 't': dtype is not a string");
  expectRefused(rawFile(entry(R"(["F32"])", "[2]", "[0,8]"), 8),
                "tensor 't': dtype is not a string");
  expectRefused(rawFile(entry("null", "[2]", "[0,8]"), 8), "tensor 't': dtype is not a string");
}

TEST_CASE("malformed: shape of the wrong JSON type", "[safetensors][malformed]") {
  expectRefused(rawFile(entry(R"("F32")", "2", "[0,8]"), 8), "tensor 't': shape is not an array");
  expectRefused(rawFile(entry(R"("F32")", R"("[2]")", "[0,8]"), 8),
                "tensor 't': shape is not an array");
  expectRefused(rawFile(entry(R"("F32")", R"({"0":2})", "[0,8]"), 8),
                "tensor 't': shape is not an array");
}

TEST_CASE("malformed: data_offsets of the wrong JSON type or length", "[safetensors][malformed]") {
  const std::string f32 = R"("F32")";
  for (const char* offsets : {"8", "[0]", "[]", "[0,4,8]", R"(["0",8])", "[0.0,8]", "[0,8e0]",
                              "[-1,8]", "[[0],8]", "[0,null]", R"({"begin":0,"end":8})"}) {
    INFO("data_offsets " << offsets);
    expectRefused(rawFile(entry(f32, "[2]", offsets), 8),
                  "tensor 't': data_offsets is not a pair of non-negative integers");
  }
}

TEST_CASE("malformed: negative dimension", "[safetensors][malformed]") {
  expectRefused(rawFile(entry(R"("F32")", "[-2]", "[0,8]"), 8),
                "tensor 't': shape dimension -2 is not a non-negative integer");
  expectRefused(rawFile(entry(R"("F32")", "[2,-9223372036854775808]", "[0,8]"), 8),
                "tensor 't': shape dimension -9223372036854775808 is not a non-negative integer");
}

TEST_CASE("malformed: non-integer dimension", "[safetensors][malformed]") {
  const std::string f32 = R"("F32")";
  expectRefused(rawFile(entry(f32, "[2.5]", "[0,8]"), 8),
                "tensor 't': shape dimension 2.5 is not a non-negative integer");
  expectRefused(rawFile(entry(f32, "[2.0]", "[0,8]"), 8),
                "tensor 't': shape dimension 2.0 is not a non-negative integer");
  expectRefused(rawFile(entry(f32, "[2e0]", "[0,8]"), 8),
                "tensor 't': shape dimension 2e0 is not a non-negative integer");
  expectRefused(rawFile(entry(f32, R"(["2"])", "[0,8]"), 8),
                "tensor 't': shape dimension \"2\" is not a non-negative integer");
  expectRefused(rawFile(entry(f32, "[[2]]", "[0,8]"), 8),
                "tensor 't': shape dimension [...] is not a non-negative integer");
  expectRefused(rawFile(entry(f32, "[true]", "[0,8]"), 8),
                "tensor 't': shape dimension true is not a non-negative integer");
  expectRefused(rawFile(entry(f32, "[null]", "[0,8]"), 8),
                "tensor 't': shape dimension null is not a non-negative integer");
}

TEST_CASE("malformed: shape element count overflows", "[safetensors][malformed]") {
  const std::string f32 = R"("F32")";
  expectRefused(rawFile(entry(f32, "[4294967296,4294967296,16]", "[0,8]"), 8),
                "tensor 't': shape [4294967296, 4294967296, 16] has more elements than");
  // Each dimension fits; the byte count does not.
  expectRefused(rawFile(entry(f32, "[4611686018427387904]", "[0,8]"), 8),
                "tensor 't': shape [4611686018427387904] of F32 has more bytes than");
  expectRefused(rawFile(entry(f32, "[9223372036854775808]", "[0,8]"), 8),
                "tensor 't': shape dimension 9223372036854775808 overflows a 64-bit integer");
  // Past uint64_t: the parser sees a float.
  expectRefused(rawFile(entry(f32, "[18446744073709551616]", "[0,8]"), 8),
                "is not a non-negative integer");
}

TEST_CASE("malformed: unsupported dtype", "[safetensors][malformed]") {
  for (const char* dtype : {"F128", "F8_E4M3", "f32", "", "C64"}) {
    INFO("dtype " << dtype);
    expectRefused(
        rawFile(entry(std::string("\"") + dtype + "\"", "[2]", "[0,8]"), 8),
        std::string("tensor 't': dtype \"") + dtype + "\" is not supported, expected F32");
  }
  // A long dtype is shortened in the message, between characters: 35 bytes
  // of "x" and the quote leave the cut in the middle of a two-byte "é".
  std::string longDtype = std::string(34, 'x') + std::string(10, '\0');
  for (int i = 0; i < 5; ++i) longDtype.replace(34 + 2 * i, 2, "\xc3\xa9");
  std::string bytes = rawFile(entry("\"" + longDtype + "\"", "[2]", "[0,8]"), 8);
  try {
    safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x");
    FAIL("the file was accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(),
               Catch::Contains("dtype \"" + std::string(34, 'x') + "...\" is not supported"));
  }
}

TEST_CASE("malformed: data_offsets begin after end", "[safetensors][malformed]") {
  expectRefused(rawFile(entry(R"("F32")", "[2]", "[8,0]"), 8),
                "tensor 't': data_offsets [8, 0] are reversed");
}

TEST_CASE("malformed: data_offsets end past the end of the data", "[safetensors][malformed]") {
  expectRefused(rawFile(kGood, 4),
                "tensor 't': data_offsets [0, 8] end past the end of the data (4 bytes");
  // A lying header that claims 4 GB of data in a small file.
  expectRefused(rawFile(entry(R"("F32")", "[1000000000]", "[0,4000000000]"), 8),
                "tensor 't': data_offsets [0, 4000000000] end past the end of the data");
  expectRefused(rawFile(entry(R"("F32")", "[2]", "[18446744073709551615,18446744073709551615]"), 8),
                "end past the end of the data");
}

TEST_CASE("malformed: byte size not elements times the dtype's size", "[safetensors][malformed]") {
  expectRefused(rawFile(entry(R"("F32")", "[3]", "[0,8]"), 8),
                "tensor 't': data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12");
  expectRefused(rawFile(entry(R"("F16")", "[2]", "[0,8]"), 8),
                "tensor 't': data_offsets [0, 8] hold 8 bytes but shape [2] of F16 needs 4");
  expectRefused(rawFile(entry(R"("F32")", "[0,5]", "[0,8]"), 8), "shape [0, 5] of F32 needs 0");
}

TEST_CASE("malformed: overlapping tensors", "[safetensors][malformed]") {
  expectRefused(rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        8),
                "tensor 'b' overlaps tensor 'a' in the data");
  // Both tensors on the same bytes.
  expectRefused(rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                        8),
                "overlaps tensor");
}

TEST_CASE("malformed: gap between tensors", "[safetensors][malformed]") {
  expectRefused(rawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                "bytes [0, 4) of the data belong to no tensor (before tensor 'a')");
  expectRefused(rawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                        12),
                "bytes [4, 8) of the data belong to no tensor (before tensor 'b')");
}

TEST_CASE("malformed: trailing bytes after the last tensor", "[safetensors][malformed]") {
  expectRefused(rawFile(kGood, 12), "the last 4 bytes of the data belong to no tensor");
  expectRefused(rawFile("{}", 1), "the last 1 bytes of the data belong to no tensor");
}

TEST_CASE("malformed: duplicate tensor names", "[safetensors][malformed]") {
  expectRefused(rawFile(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        8),
                "tensor 't' appears twice in the header");
  // The same name spelled with an escape.
  expectRefused(rawFile(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("\u0074":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        8),
                "tensor 't' appears twice in the header");
}

TEST_CASE("malformed: a field repeated in a tensor entry", "[safetensors][malformed]") {
  expectRefused(rawFile(R"({"t":{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}})", 8),
                "tensor 't': field 'shape' appears twice");
}

TEST_CASE("malformed: __metadata__ not a map of strings to strings", "[safetensors][malformed]") {
  expectRefused(rawFile(R"({"__metadata__":[1]})", 0),
                "__metadata__ is not an object mapping strings to strings");
  expectRefused(rawFile(R"({"__metadata__":"cnnc"})", 0),
                "__metadata__ is not an object mapping strings to strings");
  expectRefused(rawFile(R"({"__metadata__":{"k":1}})", 0),
                "__metadata__ value of 'k' is not a string: 1");
  expectRefused(rawFile(R"({"__metadata__":{"k":{"nested":"x"}}})", 0),
                "__metadata__ value of 'k' is not a string");
  expectRefused(rawFile(R"({"__metadata__":{"k":null}})", 0),
                "__metadata__ value of 'k' is not a string: null");
  expectRefused(rawFile(R"({"__metadata__":{"k":"a","k":"b"}})", 0),
                "__metadata__ key 'k' appears twice");
  expectRefused(rawFile(R"({"__metadata__":{},"__metadata__":{}})", 0),
                "__metadata__ appears twice");
}
