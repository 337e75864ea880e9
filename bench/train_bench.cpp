// The cnnc side of bench/run.py's training workloads: a program built
// against one network's generated header and library, with the link line
// cnnc prints, plus the defines that name the network:
//
//   c++ -std=c++17 -O2 -I DIR -DCNNC_NET_HEADER='"NET.h"' -DCNNC_NET=NET
//       bench/train_bench.cpp DIR/NET.a -lpthread -ldl -lz -o train_bench   (one line)
//
//   train_bench WEIGHTS.safetensors INPUT.bin LABELS.bin N STEPPED.safetensors
//
// Loads the weights, reads N examples (NCHW floats) and their labels (int32,
// or for an mse network n x outputs float targets), takes one train_step,
// saves the stepped weights to STEPPED, takes a second step and prints
// "ready LOSS1 LOSS2" (each the mean loss before its step). Then answers
// "run K" with the wall time of K further steps on the same batch, in ms,
// and the last loss; any other line ends it.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include CNNC_NET_HEADER

namespace {

using Clock = std::chrono::steady_clock;

template <typename T>
std::vector<T> readArray(const std::string& path, size_t count) {
  std::vector<T> values(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * sizeof(T)));
  if (!in)
    throw std::runtime_error("short file " + path + ": expected " + std::to_string(count) +
                             " values");
  return values;
}

int serve(const std::string& weights, const std::string& inputPath, const std::string& labelsPath,
          int n, const std::string& steppedPath) {
  CNNC_NET::Model model(/*seed=*/1);
  model.load(weights);
  const cnnc::NetworkInfo& info = model.info();
  if (!info.train)
    throw std::runtime_error(std::string("network ") + info.name + " has no train settings");
  bool mse = std::string(info.train->loss) == "mse";
  std::vector<float> x = readArray<float>(inputPath, static_cast<size_t>(n) * info.inputSize);
  std::vector<int32_t> labels;
  std::vector<float> targets;
  if (mse)
    targets = readArray<float>(labelsPath, static_cast<size_t>(n) * info.outputSize);
  else
    labels = readArray<int32_t>(labelsPath, static_cast<size_t>(n));
  auto step = [&] {
    return mse ? model.train_step(x.data(), targets.data(), n)
               : model.train_step(x.data(), labels.data(), n);
  };

  float first = step();
  model.save(steppedPath);
  float second = step();
  std::printf("ready %.9g %.9g\n", first, second);
  std::fflush(stdout);

  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream words(line);
    std::string command;
    int count = 0;
    words >> command >> count;
    if (command != "run" || count < 1) break;
    float loss = 0;
    auto start = Clock::now();
    for (int i = 0; i < count; ++i) loss = step();
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    std::printf("%.4f %.9g\n", ms, loss);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(
        stderr,
        "usage: train_bench WEIGHTS.safetensors INPUT.bin LABELS.bin N STEPPED.safetensors\n");
    return 2;
  }
  try {
    return serve(argv[1], argv[2], argv[3], std::stoi(argv[4]), argv[5]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_bench: %s\n", e.what());
    return 1;
  }
}
