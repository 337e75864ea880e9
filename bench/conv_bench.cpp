// The convolution benchmark's timing program: runs the ahead-of-time
// compiled workloads (conv_generator aot), driven by bench/conv_torch.py.
//
//   conv_bench peak THREADS
//       prints the measured FP32 FMA peak in GFLOP/s
//   conv_bench list
//       prints the workloads: ID C K kernel stride pad width height batch activation
//   conv_bench serve ID DIR
//       reads DIR/x.bin (input, NHWC), DIR/w.bin (weight, PyTorch's
//       [K][C][kh][kw]) and DIR/b.bin (bias), runs the workload once, writes
//       DIR/y.bin (output, NHWC) and prints "ready"; then answers each line
//       "run K" with K wall times in ms, one call each. The weight is packed
//       once after loading, outside the timed calls; no layout conversion is
//       inside them (NHWC in and out). "peak MS" answers the FMA-loop peak
//       of 2 threads in GFLOP/s, measured for about MS ms in this process,
//       between the timed turns.
// Threads: HL_NUM_THREADS (bench/conv_torch.py sets 2). CNNC_SPIN_US=U > 0
// runs the parallel loops on the runtime's spinning pool (runtime/ThreadPool.h,
// workers spin U µs after each loop before they sleep) instead of Halide's own.
#include <HalideBuffer.h>
#include <HalideRuntime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "ConvFunctions.h"  // generated: the AOT functions by workload id
#include "ConvWorkloads.h"
#include "ThreadPool.h"

double measurePeakGflops(int threads, double seconds);

using namespace cnnc;
using namespace cnnc::bench;
using Clock = std::chrono::steady_clock;

static void readFile(const std::string& path, Halide::Runtime::Buffer<float>& b) {
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(b.size_in_bytes()));
  if (!in) throw std::runtime_error("short or missing file " + path);
}

static int serve(const std::string& id, const std::string& dir) {
  const ConvWorkload* w = nullptr;
  static const std::vector<ConvWorkload> all = convWorkloads();
  for (const ConvWorkload& candidate : all)
    if (candidate.id == id) w = &candidate;
  auto fn = convFunctions().find(id);
  if (!w || fn == convFunctions().end()) throw std::runtime_error("unknown workload " + id);
  const Conv2DShape& s = w->shape;
  Halide::Runtime::Buffer<float> x(s.channels, s.width, s.height, w->batch);
  Halide::Runtime::Buffer<float> weight(s.kernelW, s.kernelH, s.channelsPerGroup(), s.filters);
  Halide::Runtime::Buffer<float> bias(s.filters);
  Halide::Runtime::Buffer<float> y(s.filters, s.outWidth(), s.outHeight(), w->batch);
  readFile(dir + "/x.bin", x);
  readFile(dir + "/w.bin", weight);
  readFile(dir + "/b.bin", bias);
  // At load time: the weight packed once (channels innermost, in vectors).
  Halide::Runtime::Buffer<float> packed(packedConv2DWeightExtents(s, fn->second.packTile));
  packConv2DWeightsInto(weight.data(), s, fn->second.packTile, packed.data());
  auto call = [&] {
    int rc = fn->second.fn(x.raw_buffer(), packed.raw_buffer(), bias.raw_buffer(), y.raw_buffer());
    if (rc != 0) throw std::runtime_error("pipeline " + id + " failed with " + std::to_string(rc));
  };
  call();
  std::ofstream(dir + "/y.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(y.data()),
             static_cast<std::streamsize>(y.size_in_bytes()));
  std::cout << "ready" << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream words(line);
    std::string command;
    int count = 0;
    words >> command >> count;
    if (command == "peak") {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f", measurePeakGflops(2, std::max(count, 1) / 1e3));
      std::cout << buf << std::endl;
      continue;
    }
    if (command != "run") break;
    std::string times;
    for (int i = 0; i < count; ++i) {
      auto t0 = Clock::now();
      call();
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f ",
                    std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      times += buf;
    }
    std::cout << times << std::endl;
  }
  return 0;
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 2 && args[0] == "peak") {
      std::printf("%.1f\n", measurePeakGflops(std::stoi(args[1]), 0.3));
      return 0;
    }
    if (args.size() == 1 && args[0] == "list") {
      for (const ConvWorkload& w : convWorkloads()) {
        const Conv2DShape& s = w.shape;
        std::printf("%s %d %d %d %d %d %d %d %d %s\n", w.id.c_str(), s.channels, s.filters,
                    s.kernelW, s.strideX, s.padX, s.width, s.height, w.batch,
                    s.activation == ConvActivation::ReLU ? "relu" : "none");
      }
      return 0;
    }
    if (args.size() == 3 && args[0] == "serve") {
      const char* spin = std::getenv("CNNC_SPIN_US");
      const char* threads = std::getenv("HL_NUM_THREADS");
      if (spin && std::atoi(spin) > 0)
        installSpinningPool(threads ? std::atoi(threads) : 2, std::atoi(spin), true);
      return serve(args[1], args[2]);
    }
  } catch (const std::exception& e) {
    std::cerr << "conv_bench: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: conv_bench peak THREADS | list | serve ID DIR\n";
  return 2;
}
