// The machine's FP32 peak, measured: independent FMA chains on every core,
// enough of them to cover the FMA latency on each port (12 chains; two FMA
// ports x 4 cycles need 8).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

double measurePeakGflops(int threads, double seconds) {
  __builtin_cpu_init();  // static programs: the CPU model is not set up before main
  bool avx512 = __builtin_cpu_supports("avx512f");
  // Twelve named accumulators (not an array, which -O2 may keep in memory).
#define CNNC_PEAK_BODY(VEC, SET1, FMA, LANES)                                                   \
  VEC a0 = SET1(0.f), a1 = SET1(1.f), a2 = SET1(2.f), a3 = SET1(3.f), a4 = SET1(4.f), a5 = SET1(5.f); \
  VEC a6 = SET1(6.f), a7 = SET1(7.f), a8 = SET1(8.f), a9 = SET1(9.f), a10 = SET1(10.f), a11 = SET1(11.f); \
  VEC m = SET1(0.999999f), c = SET1(1e-7f);                                               \
  for (long it = 0; it < iterations; ++it) {                                               \
    a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);        \
    a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);        \
    a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);    \
    /* opaque to the optimizer: the chains stay whole vectors in registers */              \
    asm volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));        \
    asm volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));      \
  }                                                                                        \
  VEC total = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;                  \
  float out[LANES];                                                                        \
  std::memcpy(out, &total, sizeof out);                                                    \
  for (float v : out) *sink += v;                                                          \
  return 12.0 * LANES * 2 * double(iterations);
  auto work = [avx512](long iterations, float* sink) -> double {
    if (avx512) {
      CNNC_PEAK_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16)
    }
    CNNC_PEAK_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8)
  };
#undef CNNC_PEAK_BODY
  // Calibrate a block of work, then run it on every thread at once.
  float sink = 0;
  long iterations = 1 << 20;
  auto start = std::chrono::steady_clock::now();
  work(iterations, &sink);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  iterations = long(double(iterations) * seconds / std::max(elapsed, 1e-4));
  // The best of three runs: on a shared machine one thread may start late
  // or lose its core for a while, which would read as a lower peak.
  std::vector<float> sinks(threads);
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<double> flops(threads);
    std::vector<std::thread> pool;
    start = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { flops[t] = work(iterations, &sinks[t]); });
    for (auto& th : pool) th.join();
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double total = 0;
    for (double f : flops) total += f;
    best = std::max(best, total / elapsed / 1e9);
  }
  static volatile float keep;  // the results are used
  for (float v : sinks) keep = keep + v + sink;
  return best;
}
