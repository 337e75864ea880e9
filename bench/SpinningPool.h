// A thread pool for Halide's parallel loops whose workers spin for a while
// after each loop before they sleep, installed with
// halide_set_custom_do_par_for.
//
// Why: on this project's 2-vCPU virtual machine, waking a sleeping worker
// takes longer than a small layer's whole parallel loop. With Halide's own
// pool (workers sleep almost at once after a loop), a 0.06 GFLOP layer
// (W2d at N=1) called back to back ran at the one-thread time, 0.34 ms,
// against 0.19 ms on a machine that wakes threads fast. OpenMP (PyTorch)
// workers spin for a while after each region, so they are awake for the
// next layer; this pool does the same for ours.
//
// One job at a time: a loop that starts while another runs (nested, or
// from another thread) runs serially on its caller.
#pragma once

namespace cnnc::bench {

// Starts `threads` - 1 workers (the caller is the other one) that spin for
// `spinMicroseconds` after each job, then sleep until the next; installs
// the pool as Halide's do_par_for. Call once, before the first pipeline.
void installSpinningPool(int threads, int spinMicroseconds);

}  // namespace cnnc::bench
