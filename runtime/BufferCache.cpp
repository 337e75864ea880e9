#include "BufferCache.h"

#include <immintrin.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>

#include <HalideRuntime.h>

#include "ThreadPool.h"

// Weak: the Halide runtime in a generated library defines them; a program
// without one (the runtime's own tests) keeps the default allocator.
extern "C" {
halide_malloc_t halide_set_custom_malloc(halide_malloc_t) __attribute__((weak));
halide_free_t halide_set_custom_free(halide_free_t) __attribute__((weak));
}

namespace cnnc {

namespace {

// Halide wants its allocations aligned for the widest vectors; 128 bytes
// also keeps two buffers off one cache line pair.
constexpr size_t kAlignment = 128;
// Free blocks kept at most, in bytes: beyond it they go back to the system.
constexpr size_t kMaxCachedBytes = size_t(1) << 30;

struct Header {
  size_t size;  // the usable bytes, rounded up to kAlignment
};
constexpr size_t kHeaderBytes = kAlignment;  // keeps the block aligned

// The lock is held for a map lookup: a pthread mutex's lock and unlock
// were 3% of LeNet-5's batch-1 call (twenty a call), a spin lock costs a
// fraction of that.
class SpinLock {
 public:
  void lock() {
    while (held_.exchange(true, std::memory_order_acquire))
      while (held_.load(std::memory_order_relaxed)) _mm_pause();
  }
  void unlock() { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

class Cache {
 public:
  void* allocate(size_t bytes) {
    size_t size = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    {
      std::lock_guard<SpinLock> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && it->second) {
        FreeBlock* block = it->second;
        it->second = block->next;
        cached_ -= size;
        return block;
      }
    }
    // A buffer of a parallel task (a conv's input rows, task_rows) is
    // asked for by every thread at once, but maybe by one alone in the
    // first call while the others wake up: a block for each of them now,
    // so that no later call allocates.
    for (int spare = 1; spare < threadsOfCurrentJob(); ++spare)
      if (void* block = newBlock(size)) release(block);
    return newBlock(size);
  }

  static void* newBlock(size_t size) {
    void* raw = std::aligned_alloc(kAlignment, size + kHeaderBytes);
    if (!raw) return nullptr;
    static_cast<Header*>(raw)->size = size;
    return static_cast<char*>(raw) + kHeaderBytes;
  }

  void release(void* block) {
    if (!block) return;
    void* raw = static_cast<char*>(block) - kHeaderBytes;
    size_t size = static_cast<Header*>(raw)->size;
    {
      std::lock_guard<SpinLock> lock(mutex_);
      if (cached_ + size <= kMaxCachedBytes) {
        // A size's list head stays in the map once made, so that keeping a
        // block allocates nothing after the first time.
        FreeBlock*& head = free_[size];
        auto* freed = static_cast<FreeBlock*>(block);
        freed->next = head;
        head = freed;
        cached_ += size;
        return;
      }
    }
    std::free(raw);
  }

 private:
  // A kept block's first bytes link it to the next one of its size.
  struct FreeBlock {
    FreeBlock* next;
  };
  SpinLock mutex_;
  std::map<size_t, FreeBlock*> free_;  // by size: a list of kept blocks (maybe empty)
  size_t cached_ = 0;
};

// Never destroyed: pipelines on other threads may free into it at exit.
Cache& cache() {
  static Cache* instance = new Cache;
  return *instance;
}

void* cachedMalloc(void*, size_t bytes) { return cache().allocate(bytes); }
void cachedFree(void*, void* block) { cache().release(block); }

}  // namespace

void installBufferCache() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!halide_set_custom_malloc || !halide_set_custom_free) return;
    halide_set_custom_malloc(cachedMalloc);
    halide_set_custom_free(cachedFree);
  });
}

}  // namespace cnnc
