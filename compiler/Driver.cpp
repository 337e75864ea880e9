// cnnc's command line: `cnnc check NET`, `cnnc NET -o OUT.a`, --help, --version.
// Exit status: 0 success, 1 the user's input was wrong, 2 a bug in cnnc.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include <Halide.h>

#include "Emit.h"
#include "Frontend.h"
#include "IRPrinter.h"
#include "LayerTable.h"
#include "TrainerWriter.h"
#include "Version.h"

namespace cnnc {
namespace {

constexpr int kExitSuccess = 0, kExitUserError = 1, kExitInternalError = 2;

const char* kUsage = R"(usage:
  cnnc NET.net [-o OUT.a] [options]   compile a network (see --emit)
  cnnc check NET.net [--emit ir]      parse and verify; print the layer table
  cnnc --help | --version

options:
  -o OUT.a            output library; OUT.h is written next to it
                      (default: the network's name, in the current directory)
  --emit LIST         what to write, from lib,header,trainer,stmt,assembly,ir
                      (default lib,header); `ir` writes OUT.ir, the checked
                      network as a canonical .net file (to stdout with check);
                      `trainer` (implies lib,header) also builds the program
                      OUT (train, eval, predict; OUT --help) with $CXX or c++
  --header PATH       where to write the header (default OUT.h)
  --target T[,T...]   Halide target strings (default host); several build one
                      library that runs, per pipeline, the first target the
                      CPU supports (the last one is the unchecked fallback)
  --schedule FILE     schedule knobs from a tuning result
  --pipelines HOW     the forward passes as one pipeline each (whole), or
                      as one per stored layer, layers of the same shape
                      compiled once (layers: much faster to compile for
                      deep networks); auto (default) splits networks of
                      more than 24 stored layers
  --inference-only    leave out the training pipelines (a smaller library,
                      compiled sooner; train_step then throws)
  -v                  log each stage with its time

exit status: 0 success, 1 an error in the input, 2 an internal error (a bug).
)";

// A mistake on the command line: reported like any user error.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  bool check = false;
  bool verbose = false;
  std::string input;
  std::string output;
  std::string header;
  std::string target = "host";
  std::string schedule;
  std::set<std::string> emit;
  bool inferenceOnly = false;
  EmitOptions::Split split = EmitOptions::Split::Auto;
};

Options parseArguments(int argc, char** argv) {
  Options options;
  std::vector<std::string> args(argv + 1, argv + argc);
  bool emitGiven = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw UsageError(fmt::format("option {} needs a value", arg));
      return args[++i];
    };
    if (arg == "check" && i == 0) {
      options.check = true;
    } else if (arg == "-v" || arg == "--verbose") {
      options.verbose = true;
    } else if (arg == "-o") {
      options.output = value();
    } else if (arg == "--header") {
      options.header = value();
    } else if (arg == "--target") {
      options.target = value();
    } else if (arg == "--schedule") {
      options.schedule = value();
    } else if (arg == "--pipelines") {
      std::string how = value();
      if (how == "auto")
        options.split = EmitOptions::Split::Auto;
      else if (how == "whole")
        options.split = EmitOptions::Split::Whole;
      else if (how == "layers")
        options.split = EmitOptions::Split::Layers;
      else
        throw UsageError(
            fmt::format("unknown --pipelines '{}' (expected auto, whole or layers)", how));
    } else if (arg == "--inference-only") {
      options.inferenceOnly = true;
    } else if (arg == "--emit") {
      emitGiven = true;
      std::stringstream list(value());
      static const std::set<std::string> kKnown = {"lib",  "header",   "trainer",
                                                   "stmt", "assembly", "ir"};
      for (std::string item; std::getline(list, item, ',');) {
        if (!kKnown.count(item))
          throw UsageError(
              fmt::format("unknown --emit item '{}' (expected lib, header, trainer, stmt, "
                          "assembly or ir)",
                          item));
        options.emit.insert(item);
      }
    } else if (!arg.empty() && arg[0] == '-') {
      throw UsageError(fmt::format("unknown option '{}' (see cnnc --help)", arg));
    } else if (options.input.empty()) {
      options.input = arg;
    } else {
      throw UsageError(fmt::format("unexpected argument '{}': one network file at a time", arg));
    }
  }
  if (options.input.empty()) throw UsageError("no network file given (see cnnc --help)");
  if (!emitGiven && !options.check) options.emit = {"lib", "header"};
  if (options.emit.count("trainer") && !options.check) options.emit.insert({"lib", "header"});
  if (options.check && !options.output.empty()) throw UsageError("check writes no files; drop -o");
  if (options.inferenceOnly && options.emit.count("trainer"))
    throw UsageError("--emit trainer needs the training pipelines; drop --inference-only");
  if (options.check &&
      (options.emit.size() > 1 || (options.emit.size() == 1 && !options.emit.count("ir"))))
    throw UsageError("check prints only the IR (--emit ir); compile to emit anything else");
  return options;
}

// Writes `text` to `path` through a temporary name, so that a failed or
// interrupted write never leaves a partial file.
void writeAtomically(const std::string& path, const std::string& text) {
  std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::remove(temporary.c_str());
      throw UsageError(fmt::format("cannot write '{}'", path));
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    throw UsageError(fmt::format("cannot write '{}'", path));
  }
}

std::string stemOf(const Options& options, const Network& net) {
  if (options.output.empty()) return net.name;
  const std::string& out = options.output;
  return out.size() > 2 && out.compare(out.size() - 2, 2, ".a") == 0 ? out.substr(0, out.size() - 2)
                                                                     : out;
}

int run(const Options& options) {
  auto start = std::chrono::steady_clock::now();
  StageLog log = nullptr;
  if (options.verbose) {
    log = [start](const std::string& stage, const std::string& detail) {
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      std::cerr << fmt::format("cnnc: [{:8.2f} ms] {}: {}\n", ms, stage, detail);
    };
  }
  Diagnostics diags;
  std::optional<SourceFile> source;
  std::optional<Network> net = analyzeFile(options.input, diags, source, log);
  if (!net) {
    std::cerr << diags.render();
    if (diags.errors().size() > 1)
      std::cerr << fmt::format("{} errors in {}\n", diags.errors().size(), options.input);
    return kExitUserError;
  }

  if (options.check) {
    std::cout << (options.emit.count("ir") ? printIR(*net) : layerTable(*net));
    return kExitSuccess;
  }
  std::string stem = stemOf(options, *net);
  if (options.emit.count("ir")) {
    std::string path = stem + ".ir";
    writeAtomically(path, printIR(*net));
    if (log) log("emit", "wrote " + path);
  }
  EmitOptions emit;
  if (!options.schedule.empty()) {
    Diagnostics scheduleDiags;
    std::optional<SourceFile> scheduleSource;
    try {
      scheduleSource.emplace(SourceFile::read(options.schedule, scheduleDiags));
    } catch (const StageFailed&) {
    }
    std::optional<ScheduleOverrides> overrides;
    if (scheduleSource) {
      scheduleDiags.setSource(&*scheduleSource);
      overrides = parseScheduleFile(*scheduleSource, *net, scheduleDiags);
    }
    if (!overrides) {
      std::cerr << scheduleDiags.render();
      return kExitUserError;
    }
    emit.schedule = *overrides;
    if (log)
      log("schedule", fmt::format("{}: knobs for {} layers", options.schedule, overrides->size()));
  }
  emit.libraryPath = stem + ".a";
  emit.headerPath = options.header.empty() ? stem + ".h" : options.header;
  emit.emit = options.emit;
  emit.target = options.target;
  emit.training = !options.inferenceOnly;
  emit.split = options.split;
  emit.log = log;
  try {
    emitLibrary(*net, emit);
    if (options.emit.count("trainer"))
      emitTrainer(*net, {stem, emit.libraryPath, emit.headerPath, log});
  } catch (const EmitError& e) {
    throw UsageError(e.what());
  } catch (const Halide::CompileError& e) {
    throw UsageError(fmt::format("cannot compile for target '{}': {}", options.target, e.what()));
  }
  if (options.emit.count("lib")) {
    std::cout << fmt::format(
        "wrote {0}.a and {1}\nlink with: c++ -std=c++17 -O2 app.cpp {0}.a -lpthread -ldl -lz -o "
        "app\n",
        stem, emit.headerPath);
  }
  if (options.emit.count("trainer"))
    std::cout << fmt::format(
        "wrote {0}, the trainer: {0} train | eval | predict (see {0} --help)\n", stem);
  return kExitSuccess;
}

}  // namespace
}  // namespace cnnc

int main(int argc, char** argv) {
  using namespace cnnc;
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
      std::cout << kUsage;
      return kExitSuccess;
    }
    if (args.size() == 1 && args[0] == "--version") {
      std::cout << fmt::format("cnnc {}\n", kVersion);
      return kExitSuccess;
    }
    return run(parseArguments(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "cnnc: error: " << e.what() << "\n";
    return kExitUserError;
  } catch (const InternalError& e) {
    std::cerr
        << "cnnc: internal error: " << e.what()
        << "\nThis is a bug in cnnc. Please report it with the .net file and the command line.\n";
    return kExitInternalError;
  } catch (const std::exception& e) {
    std::cerr
        << "cnnc: internal error: unexpected exception: " << e.what()
        << "\nThis is a bug in cnnc. Please report it with the .net file and the command line.\n";
    return kExitInternalError;
  }
}
