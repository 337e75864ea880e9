// The cnnc command line as a user runs it: exit status and what it prints.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

namespace fs = std::filesystem;

struct Run {
  int status;
  std::string output;  // stdout and stderr
};

static Run runCnnc(const std::string& args) {
  std::string command = fmt::format("'{}' {} 2>&1", CNNC_BINARY, args);
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe);
  std::string output;
  std::array<char, 4096> buffer;
  for (size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0;)
    output.append(buffer.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

static std::string example(const char* name) {
  return (fs::path(CNNC_SOURCE_DIR) / "examples" / name).string();
}

TEST_CASE("cli: check prints the layer table and the totals", "[cli]") {
  Run run = runCnnc("check " + example("lenet5.net"));
  CHECK(run.status == 0);
  CHECK(run.output.find("conv1") != std::string::npos);
  CHECK(run.output.find("total: 61,706 parameters") != std::string::npos);
}

TEST_CASE("cli: --help and --version", "[cli]") {
  Run help = runCnnc("--help");
  CHECK(help.status == 0);
  CHECK(help.output.find("cnnc check NET.net") != std::string::npos);
  Run version = runCnnc("--version");
  CHECK(version.status == 0);
  CHECK(version.output.rfind("cnnc ", 0) == 0);
}

TEST_CASE("cli: every error fixture exits with 1 and a located diagnostic", "[cli]") {
  fs::path dir = fs::path(CNNC_SOURCE_DIR) / "tests" / "errors";
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".net") continue;
    DYNAMIC_SECTION(entry.path().filename().string()) {
      Run run = runCnnc("check '" + entry.path().string() + "'");
      CHECK(run.status == 1);
      CHECK(run.output.rfind(entry.path().string() + ":", 0) == 0);
      CHECK(run.output.find(": error: ") != std::string::npos);
    }
  }
}

TEST_CASE("cli: usage mistakes exit with 1", "[cli]") {
  CHECK(runCnnc("").status == 1);
  CHECK(runCnnc("check").status == 1);
  CHECK(runCnnc("--frobnicate x.net").status == 1);
  CHECK(runCnnc("check /nonexistent/x.net").status == 1);
  CHECK(runCnnc(example("lenet5.net") + " --emit bogus").status == 1);
  CHECK(runCnnc(example("lenet5.net") + " --inference-only --emit trainer").status == 1);
}

TEST_CASE("cli: -v logs each stage", "[cli]") {
  Run run = runCnnc("check -v " + example("lenet5.net"));
  CHECK(run.status == 0);
  for (const char* stage : {"read:", "lex:", "parse:", "sema:"})
    CHECK(run.output.find(stage) != std::string::npos);
}

TEST_CASE("cli: --emit ir writes the IR beside the output, atomically", "[cli]") {
  fs::path dir = fs::temp_directory_path() / fmt::format("cnnc-cli-{}", ::getpid());
  fs::create_directories(dir);
  Run run =
      runCnnc(fmt::format("{} --emit ir -o '{}'", example("lenet5.net"), (dir / "net.a").string()));
  CHECK(run.status == 0);
  CHECK(fs::exists(dir / "net.ir"));
  CHECK_FALSE(fs::exists(dir / "net.ir.tmp"));
  Run reparsed = runCnnc("check '" + (dir / "net.ir").string() + "'");
  CHECK(reparsed.status == 0);
  CHECK(reparsed.output.find("total: 61,706 parameters") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("cli: a bad schedule file is a located error and writes nothing", "[cli]") {
  fs::path dir = fs::temp_directory_path() / fmt::format("cnnc-sched-{}", ::getpid());
  fs::create_directories(dir);
  std::ofstream(dir / "bad.sched") << "# knobs\nconv1: conv2d tile_x=4\nfc1: conv2d tile_x=2\n";
  Run run = runCnnc(fmt::format("{} -o '{}' --schedule '{}'", example("lenet5.net"), (dir / "net.a").string(),
                                (dir / "bad.sched").string()));
  CHECK(run.status == 1);
  CHECK(run.output.find("bad.sched:3:6: error: layer 'fc1' is a dense, not a conv2d") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "net.a"));
  CHECK_FALSE(fs::exists(dir / "net.h"));
  fs::remove_all(dir);
}
