// A thread pool for Halide's parallel loops whose workers spin for a while
// after each loop before they sleep, installed with
// halide_set_custom_do_par_for.
//
// Why it exists: PyTorch's OpenMP workers spin after each parallel region,
// Halide's sleep almost at once, and on a VM waking a sleeping vCPU can
// cost as much as a small layer's loop. Measured on the project's 2-vCPU
// machine, interleaved, it made no difference to back-to-back calls
// (bench/NOTES.md); it stays as an option of the benchmark
// (CNNC_SPIN_US) for runtimes where wake-ups are slow.
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
