// The thread pool for the generated pipelines' parallel loops, installed
// with halide_set_custom_do_par_for in place of Halide's own: workers spin
// for a while after each loop before they sleep, and the caller spins
// (rather than sleeps) until the last task of a loop is done.
//
// Why: a train step runs some fifty parallel loops with short serial gaps
// between them. Halide's workers sleep in those gaps, and its caller sleeps
// while a worker finishes, so each loop paid for waking a sleeping thread,
// which on a virtual machine can cost as much as a small layer's work
// (LeNet-5's step with gaps between steps, as a training loop has: 2.5-3
// ms on Halide's pool, 2.0 ms on this one). PyTorch's OpenMP workers spin
// the same way.
//
// One job at a time: a loop that starts while another runs (nested, or
// from another thread) runs serially on its caller.
#pragma once

namespace cnnc {

// Starts `threads` - 1 workers (the caller is the other one) that spin for
// `spinMicroseconds` after each job, then sleep until the next; with
// `pinWorkers`, and a processor for each thread, each worker is pinned to
// one, apart from the caller's; installs the pool as Halide's do_par_for.
// Later calls do nothing.
void installSpinningPool(int threads, int spinMicroseconds, bool pinWorkers);

// The pool as the generated library uses it, installed by the first Model:
// HL_NUM_THREADS threads (as Halide's own pool; default: the processors),
// spinning CNNC_SPIN_US microseconds (default 1000; 0 keeps Halide's pool),
// pinned unless CNNC_PIN_THREADS=0.
void installDefaultThreadPool();

// The pool's thread count when called from inside one of its tasks, else 0.
int threadsOfCurrentJob();

}  // namespace cnnc
