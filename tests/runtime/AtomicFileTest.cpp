// Atomic writes: readers see the old file or the new one, a failure leaves
// the old file and no temporary behind, and errors name the path and the
// system's reason.
#include <catch2/catch.hpp>

#include <csignal>
#include <stdexcept>
#include <string>
#include <thread>

#include <sys/resource.h>
#include <sys/stat.h>

#include "AtomicFile.h"
#include "Error.h"
#include "Safetensors.h"
#include "TestFiles.h"

using cnnc::Error;
using cnnc::writeFileAtomically;
using cnnc::testing::readBytes;
using cnnc::testing::ScratchDirectory;

TEST_CASE("atomic write: the new content replaces the old, nothing else is left", "[atomic]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("out.bin");
  writeFileAtomically(path, "first");
  CHECK(readBytes(path) == "first");
  writeFileAtomically(path, [](std::ostream& out) {
    out << "second";
    for (int i = 0; i < 100000; ++i) out.put(static_cast<char>(i));
    out.write(std::string(1 << 20, 'x').data(), 1 << 20);  // past the stream's buffer
  });
  std::string content = readBytes(path);
  REQUIRE(content.size() == 6 + 100000 + (1 << 20));
  CHECK(content.substr(0, 6) == "second");
  CHECK(static_cast<unsigned char>(content[6 + 99999]) == (99999 & 0xFF));
  CHECK(content.back() == 'x');
  CHECK(scratch.entries() == std::vector<std::string>{"out.bin"});
}

TEST_CASE("atomic write: a writer that throws midway leaves the old file and no temporary",
          "[atomic]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("weights.safetensors");
  writeFileAtomically(path, "old");
  auto failingWriter = [](std::ostream& out) {
    out.write(std::string(1 << 20, 'n').data(), 1 << 20);
    out.flush();  // the new bytes have reached the temporary file
    throw std::runtime_error("ran out of tensors");
  };
  // The writer's own exception comes through unchanged.
  CHECK_THROWS_WITH(writeFileAtomically(path, failingWriter), "ran out of tensors");
  CHECK(readBytes(path) == "old");
  CHECK(scratch.entries() == std::vector<std::string>{"weights.safetensors"});

  // Without a previous file, nothing at all is left.
  std::string fresh = scratch.file("fresh.bin");
  CHECK_THROWS_AS(writeFileAtomically(fresh, failingWriter), std::runtime_error);
  CHECK(scratch.entries() == std::vector<std::string>{"weights.safetensors"});
}

TEST_CASE("atomic write: a safetensors write that fails leaves the previous weights",
          "[atomic][safetensors]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("w.safetensors");
  cnnc::safetensors::File good;
  good.tensors = {{"t", "F32", {2}, {1, 2}}};
  cnnc::safetensors::write(path, good);
  std::string before = readBytes(path);
  cnnc::safetensors::File broken;
  broken.tensors = {{"t", "F32", {4}, {1, 2}}};
  CHECK_THROWS_AS(cnnc::safetensors::write(path, broken), Error);
  CHECK(readBytes(path) == before);
  CHECK(scratch.entries() == std::vector<std::string>{"w.safetensors"});
}

TEST_CASE("atomic write: a missing directory is named with the system's reason", "[atomic]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("missing/out.bin");
  CHECK_THROWS_WITH(writeFileAtomically(path, "data"),
                    "cannot write '" + path + "': No such file or directory");
  CHECK(scratch.entries().empty());
}

TEST_CASE("atomic write: a directory in the way fails and leaves nothing behind", "[atomic]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("taken");
  std::filesystem::create_directory(path);
  CHECK_THROWS_WITH(writeFileAtomically(path, "data"),
                    "cannot write '" + path + "': Is a directory");
  CHECK(scratch.entries() == std::vector<std::string>{"taken"});
  CHECK_THROWS_WITH(writeFileAtomically("", "data"), Catch::Contains("empty name"));
}

TEST_CASE("atomic write: a failed write names the system's reason and leaves no temporary",
          "[atomic]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("big.bin");
  writeFileAtomically(path, "old");
  // A file size limit makes write() fail with EFBIG (SIGXFSZ ignored).
  auto previousHandler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit previousLimit;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &previousLimit) == 0);
  rlimit limit = previousLimit;
  limit.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
  std::string message;
  try {
    writeFileAtomically(path, std::string(1 << 20, 'x'));
  } catch (const Error& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &previousLimit);
  std::signal(SIGXFSZ, previousHandler);
  CHECK(message == "cannot write '" + path + "': write: File too large");
  CHECK(readBytes(path) == "old");
  CHECK(scratch.entries() == std::vector<std::string>{"big.bin"});
}

TEST_CASE("atomic write: an existing file keeps its permission bits", "[atomic]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("mode.bin");
  writeFileAtomically(path, "old");
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  writeFileAtomically(path, "new");
  struct stat status;
  REQUIRE(::stat(path.c_str(), &status) == 0);
  CHECK((status.st_mode & 07777) == 0640);
  CHECK(readBytes(path) == "new");
}

TEST_CASE("atomic write: concurrent writers leave one whole file", "[atomic]") {
  ScratchDirectory scratch;
  std::string path = scratch.file("shared.bin");
  const std::string a(100000, 'a'), b(200000, 'b');
  std::thread first([&] {
    for (int i = 0; i < 20; ++i) writeFileAtomically(path, a);
  });
  std::thread second([&] {
    for (int i = 0; i < 20; ++i) writeFileAtomically(path, b);
  });
  first.join();
  second.join();
  std::string content = readBytes(path);
  CHECK((content == a || content == b));
  CHECK(scratch.entries() == std::vector<std::string>{"shared.bin"});
}
