"""The W1/W2 convolutions: cnnc's schedule template against PyTorch, side by side.

    python3 bench/conv_torch.py [--build DIR] [--reps N] [--channels-last] [--min-peak GFLOPS] [--spin-us US]
                                [--block K] [--gap-ms MS] [ID ...]

IDs are those of `conv_bench list` (W1, W2a_N1, ... W2d_N8; default: all).
For each: random NCHW input, weight and bias in PyTorch (torch.nn.Conv2d);
the same values go to conv_bench (input as NHWC, cnnc's internal layout);
its output must agree with PyTorch's to 1e-4 relative (to the largest
value) before anything is timed. Then, after a warm-up, single calls
alternate between the two sides in turns of K timed calls (default 5,
after one untimed call and a pause of --gap-ms), N calls each; the table gives medians and
minima, the ratio PyTorch/cnnc (above 1: cnnc is faster), cnnc's GFLOP/s
and its share of the FP32 peak: the median of FMA-loop peaks (2 threads)
measured in conv_bench's own process before every turn and after the last
(their range in the last column). Both sides use 2 threads (torch.set_num_threads,
HL_NUM_THREADS).

On a shared machine, --min-peak G keeps a workload's row only when the FMA
peak measured right before and right after it is at least G GFLOP/s (both
cores free), waiting and retrying otherwise (--tries times); the row then
says how many tries it took.

Threads on cnnc's side: Halide's thread pool by default; --spin-us U runs
the parallel loops on the runtime's spinning pool (runtime/ThreadPool.h) instead, whose workers
spin U us after each loop (as OpenMP's do for PyTorch). Interleaved A/B
runs showed no difference between the two (NOTES.md).

What is timed: cnnc's call takes NHWC in and gives NHWC out (activations
stay channels-innermost between layers) and packs the weight inside the
call; PyTorch's call is conv2d on NCHW tensors (--channels-last: on
channels-last tensors, its NHWC path).
"""

import argparse
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def workloads(bench):
    out = subprocess.run([bench, "list"], capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        id_, c, k, kernel, stride, pad, w, h, n, act = line.split()
        result[id_] = dict(C=int(c), K=int(k), kernel=int(kernel), stride=int(stride), pad=int(pad),
                           W=int(w), H=int(h), N=int(n), act=act)
    return result


def peak(bench):
    return float(subprocess.run([bench, "peak", "2"], capture_output=True, text=True, check=True).stdout)


def run(id_, spec, bench, reps, channels_last, work, gap_ms, block, peak_ms, spin_us):
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(spec["C"], spec["K"], spec["kernel"], stride=spec["stride"], padding=spec["pad"],
                           bias=True).eval()
    x = torch.rand(spec["N"], spec["C"], spec["H"], spec["W"]) * 2 - 1
    relu = spec["act"] == "relu"

    def forward(t):
        y = conv(t)
        return torch.relu(y) if relu else y

    x.permute(0, 2, 3, 1).contiguous().numpy().astype("<f4").tofile(work / "x.bin")
    conv.weight.detach().numpy().astype("<f4").tofile(work / "w.bin")
    conv.bias.detach().numpy().astype("<f4").tofile(work / "b.bin")
    with torch.no_grad():
        want = forward(x).permute(0, 2, 3, 1).contiguous().numpy()
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    env = dict(os.environ, HL_NUM_THREADS="2", CNNC_SPIN_US=str(spin_us))
    server = subprocess.Popen([bench, "serve", id_, str(work)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env)
    if server.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{id_}: conv_bench did not start")
    got = np.fromfile(work / "y.bin", dtype="<f4").reshape(want.shape)
    error = np.abs(got - want).max() / max(np.abs(want).max(), 1e-6)
    if not error <= 1e-4:
        raise RuntimeError(f"{id_}: cnnc and PyTorch disagree (max relative error {error:.2e})")

    def ours(count):  # `count` calls back to back, as a network's layers run
        server.stdin.write(f"run {count}\n")
        server.stdin.flush()
        return [float(t) for t in server.stdout.readline().split()]

    def theirs_once():
        with torch.no_grad():
            start = time.perf_counter()
            forward(x)
            return (time.perf_counter() - start) * 1e3

    # The sides alternate in turns of one untimed call and `block` timed
    # calls back to back, as a network's layers run. Between turns a pause:
    # after a parallel region the other side's worker threads keep spinning
    # for a while (OpenMP's wait policy; PyTorch's after every call), and
    # would take a core from the turn that follows; the untimed call takes
    # the cost of waking idle threads (and vCPUs) after the pause.
    def pause():
        if gap_ms:
            time.sleep(gap_ms / 1e3)

    def fma_peak():  # the FMA-loop peak of 2 threads, measured in conv_bench's process
        server.stdin.write(f"peak {peak_ms}\n")
        server.stdin.flush()
        return float(server.stdout.readline())

    for _ in range(2):  # warm-up
        pause(), ours(block), pause(), [theirs_once() for _ in range(block)]
    our_times, their_times, peaks = [], [], []
    while len(our_times) < reps:
        peaks.append(fma_peak())
        pause()
        our_times += ours(block + 1)[1:]
        pause()
        their_times += [theirs_once() for _ in range(block + 1)][1:]
    peaks.append(fma_peak())
    server.stdin.write("quit\n")
    server.stdin.flush()
    server.wait()
    out_w = (spec["W"] + 2 * spec["pad"] - spec["kernel"]) // spec["stride"] + 1
    out_h = (spec["H"] + 2 * spec["pad"] - spec["kernel"]) // spec["stride"] + 1
    gflop = 2 * spec["N"] * spec["K"] * spec["C"] * spec["kernel"] ** 2 * out_w * out_h / 1e9
    return dict(ours=(statistics.median(our_times), min(our_times)),
                theirs=(statistics.median(their_times), min(their_times)),
                gflop=gflop, peak=statistics.median(peaks), peak_range=(min(peaks), max(peaks)), error=error)


def run_quiet(id_, spec, bench, args, work):
    """run() when the peak before it and every in-process peak during it are at
    least args.min_peak (or, after args.tries attempts, anyway, saying so in
    the row)."""
    for attempt in range(1, args.tries + 1):
        before = peak(bench) if args.min_peak else 0
        if before < args.min_peak:
            time.sleep(5)
            continue
        r = run(id_, spec, bench, args.reps, args.channels_last, work, args.gap_ms, args.block, args.peak_ms, args.spin_us)
        if r["peak_range"][0] >= args.min_peak:
            r["tries"] = attempt
            return r
    r = run(id_, spec, bench, args.reps, args.channels_last, work, args.gap_ms, args.block, args.peak_ms, args.spin_us)
    r["tries"] = f"{args.tries}, no quiet window"
    return r


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=str(ROOT / "build-bench"))
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--min-peak", type=float, default=0)
    parser.add_argument("--gap-ms", type=float, default=20, help="pause before each turn")
    parser.add_argument("--block", type=int, default=5, help="calls per side per turn")
    parser.add_argument("--tries", type=int, default=30)
    parser.add_argument("--spin-us", type=int, default=0,
                        help="cnnc's parallel loops on the runtime's spinning pool (runtime/ThreadPool.h), workers spinning this long "
                             "after each loop (0: Halide's own pool)")
    parser.add_argument("--peak-ms", type=int, default=40, help="length of each in-process FMA peak measurement")
    parser.add_argument("ids", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(2)
    bench = str(pathlib.Path(args.build) / "conv_bench")
    specs = workloads(bench)
    ids = args.ids or list(specs)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads"
          f"{', channels_last' if args.channels_last else ''}); cnnc: 2 threads, "
          + (f"spinning pool ({args.spin_us} us)" if args.spin_us > 0 else "Halide's thread pool"))
    print(f"# command: python3 bench/conv_torch.py {' '.join(sys.argv[1:])}")
    print("| workload | cnnc ms (median / min) | PyTorch ms (median / min) | PyTorch/cnnc | cnnc GFLOP/s "
          "| share of peak (peak GFLOP/s) | max rel. error | peak range |" + (" tries |" if args.min_peak else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.min_peak else ""))
    with tempfile.TemporaryDirectory() as work:
        for id_ in ids:
            r = run_quiet(id_, specs[id_], bench, args, pathlib.Path(work))
            gflops = r["gflop"] / (r["ours"][0] / 1e3)
            print(f"| {id_} | {r['ours'][0]:.3f} / {r['ours'][1]:.3f} | {r['theirs'][0]:.3f} / {r['theirs'][1]:.3f} "
                  f"| {r['theirs'][0] / r['ours'][0]:.2f} | {gflops:.1f} | {100 * gflops / r['peak']:.1f}% "
                  f"({r['peak']:.0f}) | {r['error']:.1e} | {r['peak_range'][0]:.0f}-{r['peak_range'][1]:.0f} |" + (f" {r['tries']} |" if args.min_peak else ""), flush=True)


if __name__ == "__main__":
    main()
