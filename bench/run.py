"""cnnc against PyTorch, side by side in one run (see BENCHMARKS.md).

    python3 bench/run.py [--build DIR] [--reps N] [WORKLOAD ...]

Each workload is a .net file and a batch size. cnnc compiles the network
into its library and header, and bench/forward_bench.cpp is built against
them with the link line cnnc prints (what a user's program runs). The
network is built in PyTorch from the same file (tests/pytorch/netfile.py)
with random weights, which the cnnc side loads too; outputs must agree to 1e-4 relative before anything is
timed. Then, after a warm-up, turns alternate between the two sides until
each has N timed forward passes: a pause (--gap-ms), one untimed pass, then
--block timed ones; the table gives medians and minima, the ratio
(PyTorch / cnnc, above 1 means cnnc is faster) and cnnc's share of the FP32
peak measured by an FMA loop in the same run. Both sides use 2 threads.
GFLOP/s count a direct convolution's multiply-adds, as PyTorch's FLOP
counts do: a layer that cnnc computes by Winograd's F(2x2, 3x3) does 16/36
of those multiplies, so its share is an effective rate and may pass 100%.
A workload with a schedule file (W1-direct: W1 with `winograd=false`) is
compiled with it.

The training workloads (TRAIN_WORKLOADS, bench/train_torch.py) time one
train step (forward, backward, optimizer update) of a network compiled by
cnnc into its library and header, against PyTorch with the same optimizer,
after checking that the first steps' losses and updates agree.
"""

import argparse
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "pytorch"))
import netfile  # noqa: E402
import safetensors_io  # noqa: E402
import train_torch  # noqa: E402

WORKLOADS = {
    "W1": ("bench/workloads/w1_conv3x3_128.net", 5),
    "W1-direct": ("bench/workloads/w1_conv3x3_128.net", 5, "bench/workloads/w1_direct.schedule"),
    "W2a/N1": ("bench/workloads/w2_conv3x3_64.net", 1),
    "W2a/N8": ("bench/workloads/w2_conv3x3_64.net", 8),
    "W2b/N1": ("bench/workloads/w2_conv1x1_256.net", 1),
    "W2b/N8": ("bench/workloads/w2_conv1x1_256.net", 8),
    "W2c/N1": ("bench/workloads/w2_conv7x7_s2.net", 1),
    "W2c/N8": ("bench/workloads/w2_conv7x7_s2.net", 8),
    "W2d/N1": ("bench/workloads/w2_conv3x3_s2_128.net", 1),
    "W2d/N8": ("bench/workloads/w2_conv3x3_s2_128.net", 8),
    "W3/N1": ("examples/lenet5.net", 1),
    "W3/N256": ("examples/lenet5.net", 256),
    "W5-18/N1": ("examples/resnet18.net", 1),
    "W5-18/N8": ("examples/resnet18.net", 8),
    "W5-50/N1": ("bench/workloads/resnet50.net", 1),
    "W5-50/N8": ("bench/workloads/resnet50.net", 8),
}

# Training: .net file, batch, steps per timed turn, training FLOPs over
# forward FLOPs (train_torch.py says why 3, or 2 for a lone layer).
TRAIN_WORKLOADS = {
    "W3train": ("bench/workloads/lenet5_sgd.net", 64, 10, 3),       # SGD, momentum 0.9 (BENCHMARKS.md)
    "W3train-adam": ("examples/lenet5.net", 64, 10, 3),             # the example's own Adam settings
    "W4": ("bench/workloads/w4_cifar.net", 64, 2, 3),
    "W1train": ("bench/workloads/w1_train.net", 5, 1, 2),          # forward + backward of W1's layer
}

# W6: how long cnnc takes to compile a network into a library and header.
COMPILE_WORKLOADS = {
    "W6/lenet5": "examples/lenet5.net",
    "W6/resnet50": "bench/workloads/resnet50.net",
}


def forward_mflops(cnnc, net_path):
    out = subprocess.run([cnnc, "check", str(net_path)], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([\d.]+) MFLOPs per example", out).group(1))


def peak(bench):
    return float(subprocess.run([bench, "peak", "2"], capture_output=True, text=True, check=True).stdout)


HARNESSES = {}  # .net path -> (forward_bench built against it, cnnc seconds)


def run_workload(name, net_path, batch, build, reps, work, gap, block, schedule=None):
    cnnc_bin, bench = str(build / "compiler" / "cnnc"), str(build / "bench" / "cnnc_bench")
    key = (net_path, schedule)
    if key not in HARNESSES:  # one build per network and schedule, whatever the batch
        options = ("--inference-only",)
        if schedule:
            options += ("--schedule", str(ROOT / schedule))
            work = work / pathlib.Path(schedule).stem
            work.mkdir(exist_ok=True)
        HARNESSES[key] = train_torch.compile_harness(cnnc_bin, net_path, work,
                                                     ROOT / "bench" / "forward_bench.cpp", options)
    program = HARNESSES[key][0]
    net = netfile.load(net_path)
    model = netfile.build_model(net).eval()
    torch.manual_seed(3)
    x = torch.rand((batch,) + net.input)
    weights = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    safetensors_io.write(work / "w.safetensors", weights)
    x.numpy().astype("<f4").tofile(work / "x.bin")
    with torch.no_grad():
        want = model(x).reshape(batch, -1).numpy()

    env = dict(os.environ, HL_NUM_THREADS="2")
    server = subprocess.Popen([str(program), str(work / "w.safetensors"), str(work / "x.bin"), str(batch),
                               str(work / "y.bin")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    ready = server.stdout.readline().split()
    if not ready or ready[0] != "ready":
        raise RuntimeError(f"{name}: forward_bench did not start")
    got = np.fromfile(work / "y.bin", dtype="<f4").reshape(batch, -1)
    error = np.abs(got - want).max() / max(np.abs(want).max(), 1e-6)
    if not error <= 1e-4:
        raise RuntimeError(f"{name}: cnnc and PyTorch disagree (max error {error:.2e})")

    # A turn: a pause, one untimed call (it absorbs waking the side's
    # threads, which on a virtual machine can take milliseconds after an
    # idle pause), then `block` timed calls.
    def cnnc_turn(block):
        time.sleep(gap)
        server.stdin.write(f"run {block + 1}\n")
        server.stdin.flush()
        return [float(t) for t in server.stdout.readline().split()[1:]]  # the first is untimed

    def torch_turn(block):
        time.sleep(gap)
        times = []
        with torch.no_grad():
            for _ in range(block + 1):
                start = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - start) * 1e3)
        return times[1:]

    cnnc_turn(1), torch_turn(1)  # warm-up
    ours, theirs = [], []
    while len(ours) < reps:
        count = min(block, reps - len(ours))
        ours += cnnc_turn(count)
        theirs += torch_turn(count)
    server.stdin.write("quit\n")
    server.stdin.flush()
    server.wait()
    gflop = forward_mflops(cnnc_bin, net_path) * batch / 1e3
    peak_gflops = peak(bench)
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    return {
        "name": name, "file": net_path.name, "batch": batch,
        "ours": (ours_median, min(ours)), "theirs": (theirs_median, min(theirs)),
        "ratio": theirs_median / ours_median,
        "gflops": gflop / (ours_median / 1e3), "peak": peak_gflops, "error": error,
    }


def compile_seconds(cnnc, net_path, work):
    start = time.perf_counter()
    subprocess.run([cnnc, str(net_path), "-o", str(work / "compiled.a")], check=True, capture_output=True)
    return time.perf_counter() - start


def rate(images_per_second):
    return f"{images_per_second:,.0f}" if images_per_second >= 100 else f"{images_per_second:.3g}"


def run_trainings(names, build, reps, steps, loss_tolerance, work):
    cnnc_bin, bench = str(build / "compiler" / "cnnc"), str(build / "bench" / "cnnc_bench")
    rows = []
    print("\n| workload | network | optimizer | batch | cnnc ms/step (median / min) | PyTorch ms/step (median / min) "
          "| cnnc images/s (median, min-max) | PyTorch images/s (median, min-max) | cnnc/PyTorch "
          "| cnnc GFLOP/s | share of peak (peak GFLOP/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        path, batch, default_steps, flops_factor = TRAIN_WORKLOADS[name]
        folder = work / name
        folder.mkdir()
        try:
            r = train_torch.run_training(name, ROOT / path, batch, steps or default_steps, flops_factor, cnnc_bin,
                                         ROOT / "bench" / "train_bench.cpp", reps, folder, lambda: peak(bench),
                                         forward_mflops(cnnc_bin, ROOT / path), loss_tolerance)
        except train_torch.CheckFailed as failure:
            print(f"| {name} | {pathlib.Path(path).name} | not timed: {failure} |", flush=True)
            continue
        rows.append(r)
        ours, theirs = r["ours_ips"], r["theirs_ips"]
        print(f"| {r['name']} | {r['file']} | {r['optimizer']} lr={r['lr']:g} | {r['batch']} "
              f"| {r['ours_ms'][0]:.3f} / {r['ours_ms'][1]:.3f} | {r['theirs_ms'][0]:.3f} / {r['theirs_ms'][1]:.3f} "
              f"| {rate(ours[0])} ({rate(ours[1])}-{rate(ours[2])}) "
              f"| {rate(theirs[0])} ({rate(theirs[1])}-{rate(theirs[2])}) "
              f"| {r['ratio']:.2f} | {r['gflops']:.1f} | {100 * r['gflops'] / r['peak']:.1f}% ({r['peak']:.0f}) |",
              flush=True)
    print("\n| workload | steps/turn | FLOPs/forward | losses of steps 1, 2: cnnc / PyTorch (max rel. error) "
          "| first update max error | loss after timing: cnnc / PyTorch | cnnc compile s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        (ours, theirs) = r["losses"]
        left_out = f" ({r['masked']} elements of tiny gradient left out)" if r["masked"] else ""
        print(f"| {r['name']} | {r['steps']} | {r['flops_factor']} | {ours[0]:.6f}, {ours[1]:.6f} / "
              f"{theirs[0]:.6f}, {theirs[1]:.6f} ({r['loss_error']:.1e}) | {r['update_error']:.1e}{left_out} "
              f"| {r['last_losses'][0]:.4g} / {r['last_losses'][1]:.4g} | {r['compile_seconds']:.0f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--gap-ms", type=float, default=20,
                        help="pause before each side's turn of forward passes (%(default)g): each side's idle "
                             "workers spin for a while after its parallel loops, which on two vCPUs would be "
                             "timed as the other side's")
    parser.add_argument("--block", type=int, default=5, help="timed forward passes per turn (%(default)d)")
    parser.add_argument("--steps", type=int, help="train steps per timed turn (default: per workload)")
    parser.add_argument("--loss-tolerance", type=float, default=train_torch.LOSS_TOLERANCE,
                        help="relative loss difference allowed before training workloads are timed (%(default)g)")
    parser.add_argument("workloads", nargs="*",
                        default=list(WORKLOADS) + list(TRAIN_WORKLOADS) + list(COMPILE_WORKLOADS))
    args = parser.parse_args()
    unknown = [w for w in args.workloads if w not in {**WORKLOADS, **TRAIN_WORKLOADS, **COMPILE_WORKLOADS}]
    if unknown:
        parser.error(f"unknown workloads {', '.join(unknown)}; known: "
                     f"{', '.join(list(WORKLOADS) + list(TRAIN_WORKLOADS) + list(COMPILE_WORKLOADS))}")
    torch.set_num_threads(2)
    build = pathlib.Path(args.build)
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"# command: python3 bench/run.py {' '.join(sys.argv[1:])}")
    if any(name in WORKLOADS for name in args.workloads):
        print("| workload | network | batch | cnnc ms (median / min) | PyTorch ms (median / min) | PyTorch/cnnc "
              "| cnnc GFLOP/s | share of peak (peak GFLOP/s) |")
        print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for name in args.workloads:
            if name not in WORKLOADS:
                continue
            path, batch, *schedule = WORKLOADS[name]
            r = run_workload(name, ROOT / path, batch, build, args.reps, pathlib.Path(work), args.gap_ms / 1e3,
                             args.block, *schedule)
            print(f"| {r['name']} | {r['file']} | {r['batch']} | {r['ours'][0]:.3f} / {r['ours'][1]:.3f} "
                  f"| {r['theirs'][0]:.3f} / {r['theirs'][1]:.3f} | {r['ratio']:.2f} | {r['gflops']:.1f} "
                  f"| {100 * r['gflops'] / r['peak']:.1f}% ({r['peak']:.0f}) |", flush=True)
        trainings = [name for name in args.workloads if name in TRAIN_WORKLOADS]
        if trainings:
            run_trainings(trainings, build, args.reps, args.steps, args.loss_tolerance, pathlib.Path(work))
        compiles = [name for name in args.workloads if name in COMPILE_WORKLOADS]
        if compiles:
            print("\n| workload | network | cnnc wall time, s |\n|---|---|---|")
        for name in compiles:
            path = ROOT / COMPILE_WORKLOADS[name]
            seconds = compile_seconds(str(build / "compiler" / "cnnc"), path, pathlib.Path(work))
            print(f"| {name} | {path.name} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
