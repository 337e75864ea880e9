// The cnnc side of bench/run.py's inference workloads: a program built
// against one network's generated header and library, with the link line
// cnnc prints, plus the defines that name the network:
//
//   c++ -std=c++17 -O2 -I DIR -DCNNC_NET_HEADER='"NET.h"' -DCNNC_NET=NET
//       bench/forward_bench.cpp DIR/NET.a -lpthread -ldl -lz -o forward_bench   (one line)
//
//   forward_bench WEIGHTS.safetensors INPUT.bin N OUTPUT.bin
//
// Loads the weights, runs Model::forward once on the N examples of INPUT
// (NCHW floats), writes the output and prints "ready"; then answers
// "run K" with the wall time of each of K further forward passes, in ms;
// any other line ends it.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include CNNC_NET_HEADER

namespace {

using Clock = std::chrono::steady_clock;

int serve(const std::string& weights, const std::string& inputPath, int n,
          const std::string& outputPath) {
  CNNC_NET::Model model(/*seed=*/1);
  model.load(weights);
  const cnnc::NetworkInfo& info = model.info();
  std::vector<float> x(static_cast<size_t>(n) * info.inputSize);
  std::ifstream in(inputPath, std::ios::binary);
  in.read(reinterpret_cast<char*>(x.data()),
          static_cast<std::streamsize>(x.size() * sizeof(float)));
  if (!in) throw std::runtime_error("short input file " + inputPath);
  std::vector<float> out(static_cast<size_t>(n) * info.outputSize);
  model.forward(x.data(), n, out.data());
  std::ofstream(outputPath, std::ios::binary)
      .write(reinterpret_cast<const char*>(out.data()),
             static_cast<std::streamsize>(out.size() * sizeof(float)));
  std::printf("ready\n");
  std::fflush(stdout);

  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream words(line);
    std::string command;
    int count = 0;
    words >> command >> count;
    if (command != "run" || count < 1) break;
    std::string times;
    for (int i = 0; i < count; ++i) {
      auto start = Clock::now();
      model.forward(x.data(), n, out.data());
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      times += std::to_string(ms) + " ";
    }
    std::printf("%s\n", times.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: forward_bench WEIGHTS.safetensors INPUT.bin N OUTPUT.bin\n");
    return 2;
  }
  try {
    return serve(argv[1], argv[2], std::stoi(argv[3]), argv[4]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forward_bench: %s\n", e.what());
    return 1;
  }
}
