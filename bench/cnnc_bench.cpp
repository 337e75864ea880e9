// The native side of bench/run.py's peak column.
//
//   cnnc_bench peak THREADS
//       prints the measured FP32 peak in GFLOP/s
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

double measurePeakGflops(int threads, double seconds);

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 2 && args[0] == "peak") {
      std::cout << fmt::format("{:.1f}", measurePeakGflops(std::stoi(args[1]), 0.5)) << std::endl;
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "cnnc_bench: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: cnnc_bench peak THREADS\n";
  return 2;
}
