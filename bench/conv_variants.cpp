// Times the variants that `conv_generator variants` compiled: the variants
// of each workload alternately; prints the median and minimum of each with
// its share of the FMA peak measured in the same process. Statically linked,
// it runs on a quiet machine of the same kind to compare schedules where
// this one is noisy.
//
//   conv_variants [REPS]      (threads: HL_NUM_THREADS; CNNC_SPIN_US as in conv_bench)
#include <HalideBuffer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ConvWorkloads.h"
#include "ThreadPool.h"
#include "variants.h"

double measurePeakGflops(int threads, double seconds);

using namespace cnnc;
using namespace cnnc::bench;
using Buffer = Halide::Runtime::Buffer<float>;

static void timeWorkload(const ConvWorkload& w, const std::vector<const Variant*>& variants,
                         int reps, double peak) {
  const Conv2DShape& s = w.shape;
  Buffer x(s.channels, s.width, s.height, w.batch),
      weight(s.kernelW, s.kernelH, s.channelsPerGroup(), s.filters), bias(s.filters),
      first(s.filters, s.outWidth(), s.outHeight(), w.batch),
      y(s.filters, s.outWidth(), s.outHeight(), w.batch);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (Buffer* b : {&x, &weight, &bias}) b->for_each_value([&](float& v) { v = u(rng); });
  std::vector<Buffer> packed;
  for (const Variant* v : variants) {
    packed.emplace_back(packedConv2DWeightExtents(s, v->packTile));
    packConv2DWeightsInto(weight.data(), s, v->packTile, packed.back().data());
  }
  double gflop = s.flopsPerExample() * w.batch / 1e9;
  std::printf("%s: %s N=%d, %.3f GFLOP\n", w.id.c_str(), s.str().c_str(), w.batch, gflop);
  auto call = [&](size_t v, Buffer& out) {
    return variants[v]->fn(x.raw_buffer(), packed[v].raw_buffer(), bias.raw_buffer(),
                           out.raw_buffer());
  };
  call(0, first);
  std::vector<double> diffs;
  for (size_t v = 0; v < variants.size(); ++v) {  // every variant must agree with the first
    call(v, y);
    double worst = 0, largest = 1e-6;
    for (size_t i = 0; i < y.number_of_elements(); ++i) {
      worst = std::max(worst, double(std::abs(y.data()[i] - first.data()[i])));
      largest = std::max(largest, double(std::abs(first.data()[i])));
    }
    diffs.push_back(worst / largest);
  }
  std::vector<std::vector<double>> times(variants.size());
  for (int round = -3; round < reps; ++round)
    for (size_t v = 0; v < variants.size(); ++v) {
      auto t0 = std::chrono::steady_clock::now();
      call(v, y);
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (round >= 0) times[v].push_back(ms);
    }
  for (size_t v = 0; v < variants.size(); ++v) {
    std::vector<double>& t = times[v];
    std::sort(t.begin(), t.end());
    double med = t[t.size() / 2];
    std::printf("  median %8.3f  min %8.3f ms  %6.1f GFLOP/s  %5.1f%%  %s%s\n", med, t[0],
                gflop / med * 1e3, 100 * gflop / med * 1e3 / peak, variants[v]->spec,
                diffs[v] <= 1e-5 ? "" : "  DIFFERS");
  }
}

int main(int argc, char** argv) {
  int reps = argc > 1 ? std::atoi(argv[1]) : 10;
  const char* env = std::getenv("HL_NUM_THREADS");
  // CNNC_SPIN_US > 0: the runtime's spinning pool (runtime/ThreadPool.h) instead of Halide's.
  const char* spin = std::getenv("CNNC_SPIN_US");
  if (spin && std::atoi(spin) > 0)
    installSpinningPool(env ? std::atoi(env) : 2, std::atoi(spin), true);
  double peak = measurePeakGflops(env ? std::atoi(env) : 2, 0.3);
  std::printf("peak %.1f GFLOP/s\n", peak);
  for (const ConvWorkload& w : convWorkloads()) {
    std::vector<const Variant*> mine;
    for (const Variant& v : kVariants)
      if (w.id == v.workload) mine.push_back(&v);
    if (!mine.empty()) timeWorkload(w, mine, reps, peak);
  }
  std::printf("peak %.1f GFLOP/s\n", measurePeakGflops(env ? std::atoi(env) : 2, 0.3));
  return 0;
}
