// The machine's FP32 peak, measured: independent FMA chains on every core,
// enough of them to cover the FMA latency on each port.
#include <immintrin.h>

#include <chrono>
#include <thread>
#include <vector>

double measurePeakGflops(int threads, double seconds) {
  __builtin_cpu_init();  // static programs: the CPU model is not set up before main
  bool avx512 = __builtin_cpu_supports("avx512f");
  auto work = [avx512](long iterations, float* sink) {
    if (avx512) {
      __m512 acc[12];
      for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(float(i));
      __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
      for (long it = 0; it < iterations; ++it)
        for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
      __m512 total = acc[0];
      for (int i = 1; i < 12; ++i) total = _mm512_add_ps(total, acc[i]);
      *sink = _mm512_reduce_add_ps(total);
      return 12.0 * 16 * 2 * double(iterations);
    }
    __m256 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i));
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iterations; ++it)
      for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float out[8];
    _mm256_storeu_ps(out, acc[0]);
    *sink = out[0];
    return 12.0 * 8 * 2 * double(iterations);
  };
  // Calibrate a block of work, then run it on every thread at once.
  float sink = 0;
  long iterations = 1 << 20;
  auto start = std::chrono::steady_clock::now();
  work(iterations, &sink);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  iterations = long(double(iterations) * seconds / elapsed);
  std::vector<float> sinks(threads);
  std::vector<double> flops(threads);
  std::vector<std::thread> pool;
  start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { flops[t] = work(iterations, &sinks[t]); });
  for (auto& th : pool) th.join();
  elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / elapsed / 1e9;
}
