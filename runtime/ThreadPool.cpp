#include "ThreadPool.h"

#include <HalideRuntime.h>
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

// Weak: the Halide runtime in a generated library defines it; a program
// without one (the runtime's own tests) has no parallel loops to run.
extern "C" halide_do_par_for_t halide_set_custom_do_par_for(halide_do_par_for_t)
    __attribute__((weak));

namespace cnnc {
namespace {

// The current job's claim word: generation (22 bits) | next task index
// (21) | task count (21). A worker claims a task with a compare-exchange
// that fails when the generation moved on, so a late worker can never take
// a task of a newer job with an older job's function.
constexpr int kIndexShift = 21, kGenShift = 42;
constexpr uint64_t kMask21 = (uint64_t(1) << 21) - 1;

struct Pool {
  std::atomic<uint64_t> claim{0};
  std::atomic<int> done{0};   // tasks finished in the current job
  std::atomic<int> error{0};  // first nonzero task result
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  // The current job; written before its claim word is published.
  halide_task_t task = nullptr;
  void* userContext = nullptr;
  uint8_t* closure = nullptr;
  int min = 0;
  std::mutex jobMutex;  // one job at a time
  std::mutex sleepMutex;
  std::condition_variable wake;
  std::chrono::nanoseconds spin{0};
  std::vector<std::thread> workers;
  // Pinned workers and the processor left for the caller (-1: none
  // pinned). Only the caller of a job changes them.
  struct Pinned {
    pthread_t thread;
    int cpu;
  };
  std::vector<Pinned> pinned;
  int callerCpu = -1;
  halide_do_par_for_t fallback = nullptr;
};

Pool* pool = nullptr;
thread_local bool inJob = false;

uint64_t generationOf(uint64_t word) {
  return word >> kGenShift;
}

// Runs tasks of the job published in `word` until none are left unclaimed.
void work(Pool& p, uint64_t word) {
  const uint64_t gen = generationOf(word);
  for (;;) {
    uint64_t index = (word >> kIndexShift) & kMask21, count = word & kMask21;
    if (generationOf(word) != gen || index >= count) return;
    if (!p.claim.compare_exchange_weak(word, word + (uint64_t(1) << kIndexShift),
                                       std::memory_order_acq_rel))
      continue;
    // Claimed: the job cannot finish (nor its fields change) before this
    // task is counted done.
    int result = p.task(p.userContext, p.min + int(index), p.closure);
    if (result != 0) {
      int none = 0;
      p.error.compare_exchange_strong(none, result);
    }
    p.done.fetch_add(1, std::memory_order_acq_rel);
    word = p.claim.load(std::memory_order_acquire);
  }
}

void workerLoop(Pool& p) {
  inJob = true;  // loops started from inside a task run serially
  uint64_t seen = generationOf(p.claim.load(std::memory_order_acquire));
  while (!p.stop.load(std::memory_order_relaxed)) {
    auto idleSince = std::chrono::steady_clock::now();
    uint64_t word = p.claim.load(std::memory_order_acquire);
    for (unsigned spins = 0; generationOf(word) == seen; ++spins) {
      _mm_pause();
      if ((spins & 255) == 255) {
        if (p.stop.load(std::memory_order_relaxed)) return;
        if (std::chrono::steady_clock::now() - idleSince > p.spin) {
          std::unique_lock<std::mutex> lock(p.sleepMutex);
          p.sleepers.fetch_add(1);  // seq_cst: pairs with the publisher's load
          p.wake.wait(lock, [&] { return p.stop.load() || generationOf(p.claim.load()) != seen; });
          p.sleepers.fetch_sub(1);
          if (p.stop.load()) return;
          idleSince = std::chrono::steady_clock::now();
        }
      }
      word = p.claim.load(std::memory_order_acquire);
    }
    seen = generationOf(word);
    work(p, word);
  }
}

void pin(pthread_t thread, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(thread, sizeof set, &set);
}

// Left to the scheduler, a worker woken after a pause often ran on the
// caller's processor for many calls, each then as slow as on one thread or,
// while both spun, several times slower (W2d at batch 1: 0.37 and 1.4 ms
// against 0.24, a third of the calls). So each worker is pinned to a
// processor of its own, and where the caller (a user's thread, not pinned)
// turns up on a worker's, that worker moves to the one the caller left.
void keepCallerApart(Pool& p) {
  if (p.callerCpu < 0) return;
  int cpu = sched_getcpu();
  if (cpu < 0 || cpu == p.callerCpu) return;
  for (Pool::Pinned& worker : p.pinned)
    if (worker.cpu == cpu) {
      pin(worker.thread, p.callerCpu);
      worker.cpu = p.callerCpu;
      break;
    }
  p.callerCpu = cpu;
}

int spinningDoParFor(void* userContext, halide_task_t task, int min, int size, uint8_t* closure) {
  Pool& p = *pool;
  auto serial = [&] {
    for (int i = 0; i < size; ++i)
      if (int result = task(userContext, min + i, closure)) return result;
    return 0;
  };
  if (size <= 1 || inJob) return serial();
  if (uint64_t(size) > kMask21 || p.workers.empty())
    return p.fallback(userContext, task, min, size, closure);
  std::unique_lock<std::mutex> job(p.jobMutex, std::try_to_lock);
  if (!job.owns_lock()) return serial();
  keepCallerApart(p);
  p.task = task;
  p.userContext = userContext;
  p.closure = closure;
  p.min = min;
  p.done.store(0, std::memory_order_relaxed);
  p.error.store(0, std::memory_order_relaxed);
  uint64_t gen = (generationOf(p.claim.load()) + 1) & ((uint64_t(1) << 22) - 1);
  uint64_t word = (gen << kGenShift) | uint64_t(size);
  p.claim.store(word);  // seq_cst: publishes the job's fields
  if (p.sleepers.load() > 0) {
    std::lock_guard<std::mutex> lock(p.sleepMutex);
    p.wake.notify_all();
  }
  inJob = true;
  work(p, word);
  inJob = false;
  while (p.done.load(std::memory_order_acquire) < size) _mm_pause();
  return p.error.load();
}

// The processors this thread may run on, in order.
std::vector<int> allowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

}  // namespace

int threadsOfCurrentJob() {
  return pool && inJob ? static_cast<int>(pool->workers.size()) + 1 : 0;
}

void installSpinningPool(int threads, int spinMicroseconds, bool pinWorkers) {
  if (pool || !halide_set_custom_do_par_for) return;
  pool = new Pool;  // lives as long as the process: Halide may call it until exit
  pool->spin = std::chrono::microseconds(spinMicroseconds);
  for (int t = 1; t < threads; ++t) pool->workers.emplace_back(workerLoop, std::ref(*pool));
  // Pinned (keepCallerApart) where each thread can have a processor.
  std::vector<int> cpus = pinWorkers ? allowedCpus() : std::vector<int>();
  if (threads > 1 && cpus.size() >= size_t(threads)) {
    pool->callerCpu = cpus[0];
    for (int t = 1; t < threads; ++t) {
      pool->pinned.push_back({pool->workers[t - 1].native_handle(), cpus[t]});
      pin(pool->pinned.back().thread, cpus[t]);
    }
  }
  for (auto& w : pool->workers) w.detach();
  pool->fallback = halide_set_custom_do_par_for(spinningDoParFor);
}

}  // namespace cnnc

namespace cnnc {

void installDefaultThreadPool() {
  static const bool installed = [] {
    const char* spin = std::getenv("CNNC_SPIN_US");
    int spinMicroseconds = spin ? std::atoi(spin) : 1000;
    if (spinMicroseconds <= 0) return false;
    const char* threads = std::getenv("HL_NUM_THREADS");
    int count = threads && std::atoi(threads) > 0
                    ? std::atoi(threads)
                    : static_cast<int>(std::thread::hardware_concurrency());
    const char* pin = std::getenv("CNNC_PIN_THREADS");
    installSpinningPool(std::max(count, 1), spinMicroseconds, !pin || std::atoi(pin) != 0);
    return true;
  }();
  (void)installed;
}

}  // namespace cnnc
