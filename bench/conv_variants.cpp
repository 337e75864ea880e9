// Times the variants that `conv_generator variants` compiled, alternately,
// and prints the median and minimum of each with its share of the FMA peak
// measured in the same process. Statically linked, it runs on a quiet
// machine of the same kind to compare schedules where this one is noisy.
//
//   conv_variants [REPS]      (threads: HL_NUM_THREADS)
#include <HalideBuffer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "ConvWorkloads.h"
#include "variants.h"

double measurePeakGflops(int threads, double seconds);

using namespace cnnc;
using namespace cnnc::bench;
using Buffer = Halide::Runtime::Buffer<float>;

int main(int argc, char** argv) {
  int reps = argc > 1 ? std::atoi(argv[1]) : 10;
  const ConvWorkload* w = nullptr;
  static const std::vector<ConvWorkload> all = convWorkloads();
  for (const ConvWorkload& c : all)
    if (c.id == kWorkload) w = &c;
  if (!w) return 1;
  const Conv2DShape& s = w->shape;
  Buffer x(s.channels, s.width, s.height, w->batch), weight(s.kernelW, s.kernelH, s.channelsPerGroup(), s.filters),
      bias(s.filters), first(s.filters, s.outWidth(), s.outHeight(), w->batch),
      y(s.filters, s.outWidth(), s.outHeight(), w->batch);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (Buffer* b : {&x, &weight, &bias}) b->for_each_value([&](float& v) { v = u(rng); });
  size_t count = sizeof(kVariants) / sizeof(kVariants[0]);
  double gflop = s.flopsPerExample() * w->batch / 1e9;
  std::printf("%s: %s N=%d, %.3f GFLOP\n", kWorkload, s.str().c_str(), w->batch, gflop);
  // Every variant must agree with the first.
  kVariants[0].fn(x.raw_buffer(), weight.raw_buffer(), bias.raw_buffer(), first.raw_buffer());
  for (size_t v = 0; v < count; ++v) {
    kVariants[v].fn(x.raw_buffer(), weight.raw_buffer(), bias.raw_buffer(), y.raw_buffer());
    double worst = 0, largest = 1e-6;
    for (size_t i = 0; i < y.number_of_elements(); ++i) {
      worst = std::max(worst, double(std::abs(y.data()[i] - first.data()[i])));
      largest = std::max(largest, double(std::abs(first.data()[i])));
    }
    std::printf("  [%zu] %-50s diff %.1e\n", v, kVariants[v].spec, worst / largest);
  }
  std::vector<std::vector<double>> times(count);
  for (int round = -2; round < reps; ++round)
    for (size_t v = 0; v < count; ++v) {
      auto t0 = std::chrono::steady_clock::now();
      kVariants[v].fn(x.raw_buffer(), weight.raw_buffer(), bias.raw_buffer(), y.raw_buffer());
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (round >= 0) times[v].push_back(ms);
    }
  const char* env = std::getenv("HL_NUM_THREADS");
  double peak = measurePeakGflops(env ? std::atoi(env) : 2, 0.3);
  std::printf("  peak %.1f GFLOP/s\n", peak);
  for (size_t v = 0; v < count; ++v) {
    std::vector<double>& t = times[v];
    std::sort(t.begin(), t.end());
    double med = t[t.size() / 2];
    std::printf("  [%zu] median %8.3f  min %8.3f ms  %6.1f GFLOP/s  %5.1f%%  %s\n", v, med, t[0],
                gflop / med * 1e3, 100 * gflop / med * 1e3 / peak, kVariants[v].spec);
  }
  return 0;
}
