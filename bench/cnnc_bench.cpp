// The native side of bench/run.py.
//
//   cnnc_bench peak THREADS
//       prints the measured FP32 peak in GFLOP/s
//   cnnc_bench serve NET.net BATCH WEIGHTS.safetensors INPUT.bin OUTPUT.bin
//       compiles the network's forward pass through cnnc's lowering and
//       default schedules (batch 1 uses the latency schedule), its parallel
//       loops on the generated library's thread pool (runtime/ThreadPool.h,
//       HL_NUM_THREADS and CNNC_SPIN_US as there), runs it once
//       on the given weights and input and writes the output, prints
//       "ready COMPILE_MS", then answers "run K" with K timings in ms.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "Frontend.h"
#include "Lowering.h"
#include "NetworkSchedule.h"
#include "Safetensors.h"
#include "ThreadPool.h"

double measurePeakGflops(int threads, double seconds);

using namespace cnnc;
using Clock = std::chrono::steady_clock;

static double millisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

static int serve(const std::string& path, int batch, const std::string& weights,
                 const std::string& inputPath, const std::string& outputPath) {
  Diagnostics diags;
  std::optional<SourceFile> source;
  std::optional<Network> net = analyzeFile(path, diags, source);
  if (!net) {
    std::cerr << diags.render();
    return 1;
  }
  auto start = Clock::now();
  Halide::Target target = Halide::get_jit_target_from_environment();
  LoweredNetwork lowered = lowerNetwork(*net, Purpose::Inference);
  ScheduleOptions options{target, batch == 1};
  options.examplesFused = true;
  scheduleForward(*net, lowered, options);
  Halide::Func output = lowered.apiOutput(static_cast<int>(net->layers.size()) - 1);
  scheduleApiOutput(output, net->outputShape(), ScheduleOptions{target, batch == 1});
  Halide::Pipeline pipeline(output);
  pipeline.compile_jit(target);
  // The parallel loops on the pool the generated library installs by default.
  PoolSettings pool = poolSettingsFromEnvironment();
  if (pool.spinMicroseconds > 0)
    pipeline.jit_handlers().custom_do_par_for =
        reinterpret_cast<decltype(Halide::JITHandlers::custom_do_par_for)>(
            spinningPool(pool.threads, pool.spinMicroseconds));

  std::vector<int> inDims(net->inputShape.dims.rbegin(), net->inputShape.dims.rend());
  inDims.push_back(batch);
  Halide::Buffer<float> input(inDims);
  std::ifstream in(inputPath, std::ios::binary);
  in.read(reinterpret_cast<char*>(input.data()),
          static_cast<std::streamsize>(input.size_in_bytes()));
  if (!in) throw std::runtime_error("short input file " + inputPath);
  lowered.input.set(input);

  safetensors::File file = safetensors::read(weights);
  std::vector<Halide::Buffer<float>> params;
  size_t p = 0;
  for (const Layer& layer : net->layers)
    for (const ParamSpec& spec : layer.params) {
      const safetensors::Tensor* t = file.find(layer.name + "." + spec.name);
      if (!t) throw std::runtime_error("missing tensor " + layer.name + "." + spec.name);
      std::vector<int> dims(spec.shape.rbegin(), spec.shape.rend());
      params.emplace_back(dims);
      std::copy(t->data.begin(), t->data.end(), params.back().data());
      lowered.params[p++].set(params.back());
    }
  const Shape& outShape = net->outputShape();
  std::vector<int> outDims(outShape.dims.rbegin(), outShape.dims.rend());
  outDims.push_back(batch);
  Halide::Buffer<float> result(outDims);
  pipeline.realize(result);
  std::ofstream(outputPath, std::ios::binary)
      .write(reinterpret_cast<const char*>(result.data()),
             static_cast<std::streamsize>(result.size_in_bytes()));
  std::cout << fmt::format("ready {:.0f}", millisecondsSince(start)) << std::endl;

  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream words(line);
    std::string command;
    int count = 0;
    words >> command >> count;
    if (command != "run") break;
    std::string times;
    for (int i = 0; i < count; ++i) {
      auto t0 = Clock::now();
      pipeline.realize(result);
      times += fmt::format("{:.4f} ", millisecondsSince(t0));
    }
    std::cout << times << std::endl;
  }
  return 0;
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 2 && args[0] == "peak") {
      std::cout << fmt::format("{:.1f}", measurePeakGflops(std::stoi(args[1]), 0.5)) << std::endl;
      return 0;
    }
    if (args.size() == 6 && args[0] == "serve")
      return serve(args[1], std::stoi(args[2]), args[3], args[4], args[5]);
  } catch (const std::exception& e) {
    std::cerr << "cnnc_bench: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: cnnc_bench peak THREADS | serve NET BATCH WEIGHTS INPUT OUTPUT\n";
  return 2;
}
