"""The training workloads of bench/run.py: one train step of a .net network,
cnnc's generated library against PyTorch, side by side (see BENCHMARKS.md).

For each workload: the network is built in PyTorch from the same file
(tests/pytorch/netfile.py) with its `train` settings' optimizer
(torch.optim.SGD or Adam) and loss (CrossEntropyLoss on the logits, a final
softmax fused into it, or MSELoss); cnnc compiles the file, and
bench/train_bench.cpp is built against the header and library with the link
line cnnc prints. Both sides start from the same weights (PyTorch's, passed
in safetensors) and train on the same batch of random inputs and labels.

Correctness before timing: the loss of the first step (computed before the
update) must agree to 1e-4 relative, so must the second step's (which sees
the first update), and every parameter's first update (stepped minus
initial weights) must agree to 1e-3 of its largest element. Adam's first
update is -lr * g / (|g| + eps), which turns a rounding difference in a
gradient near eps into a large one in the update; its elements are compared
only where PyTorch's gradient is zero or exceeds 100 eps.

Timing: warm-up steps on each side, then turns of K steps alternate between
the sides (cnnc first), `reps` turns each; a turn's time over K is a step's
time. The FLOPs of a step are `flops_factor` times the forward FLOPs that
`cnnc check` prints (3 for a network: forward, input gradients, weight
gradients; 2 for a single layer, whose input needs no gradient).
"""

import os
import pathlib
import re
import shlex
import statistics
import subprocess
import time

import numpy as np
import torch

import netfile
import safetensors_io

# A pause between turns: a side's idle worker threads spin for a while after
# its last parallel loop (OpenMP's and Halide's both do), and on two vCPUs
# that spinning would be timed as the other side's.
TURN_GAP_SECONDS = 0.2
LOSS_TOLERANCE = 1e-4    # relative, on each of the first two steps' losses
UPDATE_TOLERANCE = 1e-3  # on a parameter's first update, relative to its largest element
WARMUP_STEPS = 3


def compile_harness(cnnc, net_path, work, source, options=()):
    """Compiles the network with cnnc (and `options`) and builds the harness
    `source` against it with cnnc's printed link line; returns (the program,
    cnnc's wall time in s)."""
    net = netfile.load(net_path)
    library = work / f"{net.name}.a"
    start = time.perf_counter()
    result = subprocess.run([cnnc, str(net_path), "-o", str(library), *options], capture_output=True, text=True)
    compile_seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"cnnc {net_path} failed:\n{result.stdout}{result.stderr}")
    link = re.search(r"link with: (.*)", result.stdout)
    if not link:
        raise RuntimeError(f"cnnc printed no link line:\n{result.stdout}")
    words = shlex.split(link.group(1))
    program = work / f"{pathlib.Path(source).stem}_{net.name}"
    words[words.index("app.cpp")] = str(source)
    words[words.index("-o") + 1] = str(program)
    defines = [f"-I{work}", f'-DCNNC_NET_HEADER="{net.name}.h"', f"-DCNNC_NET={net.name}"]
    subprocess.run(words[:1] + defines + words[1:], check=True)
    return program, compile_seconds


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


class CheckFailed(RuntimeError):
    """cnnc and PyTorch disagree on the first steps: nothing is timed."""


def run_training(name, net_path, batch, steps, flops_factor, cnnc, harness_source, reps, work, peak,
                 forward_mflops, loss_tolerance=LOSS_TOLERANCE):
    net = netfile.load(net_path)
    torch.manual_seed(3)
    model = netfile.initialize(netfile.build_model(net).train())
    x = torch.rand((batch,) + net.input)
    if net.train["loss"] == "mse":
        labels = torch.rand((batch,) + net.output.shape)
        labels.numpy().astype("<f4").tofile(work / "labels.bin")
    else:
        classes = int(np.prod(net.output.shape))
        labels = torch.randint(0, classes, (batch,))
        labels.numpy().astype("<i4").tofile(work / "labels.bin")
    x.numpy().astype("<f4").tofile(work / "x.bin")
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    safetensors_io.write(work / "w.safetensors", initial)
    optimizer = netfile.make_optimizer(model)

    def torch_step():
        optimizer.zero_grad(set_to_none=True)
        loss = netfile.loss(model, x, labels)
        loss.backward()
        optimizer.step()
        return loss

    program, compile_seconds = compile_harness(cnnc, net_path, work, harness_source)
    env = dict(os.environ, HL_NUM_THREADS="2")
    server = subprocess.Popen([str(program), str(work / "w.safetensors"), str(work / "x.bin"),
                               str(work / "labels.bin"), str(batch), str(work / "stepped.safetensors")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready = server.stdout.readline().split()
        if len(ready) != 3 or ready[0] != "ready":
            raise RuntimeError(f"{name}: train_bench did not start")
        ours_losses = [float(ready[1]), float(ready[2])]
        theirs_losses = [torch_step().item()]
        stepped = {k: v.detach().clone() for k, v in model.state_dict().items() if k in initial}
        first_grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
        theirs_losses.append(torch_step().item())
        loss_error = max(relative(a, b) for a, b in zip(ours_losses, theirs_losses))
        ours_stepped, _ = safetensors_io.read(work / "stepped.safetensors")
        update_error, masked, worst = 0.0, 0, None
        for key, value in initial.items():
            want = (stepped[key] - value).numpy()
            got = ours_stepped[key].astype(np.float64) - value.numpy()
            compared = np.ones(want.shape, dtype=bool)
            if net.train["optimizer"] == "adam" and key in first_grads:
                magnitude = np.abs(first_grads[key].numpy())
                compared = (magnitude == 0) | (magnitude > 100 * net.train["eps"])
                masked += int((~compared).sum())
            error = np.abs(got - want)[compared].max(initial=0) / max(np.abs(want).max(), 1e-12)
            if error > update_error:
                update_error, worst = error, key
        failures = []
        if not loss_error <= loss_tolerance:
            failures.append(f"losses of steps 1, 2 disagree by {loss_error:.2e} relative (tolerance "
                            f"{loss_tolerance:g}): cnnc {ours_losses}, PyTorch {theirs_losses}")
        if not update_error <= UPDATE_TOLERANCE:
            failures.append(f"the first update of {worst} disagrees by {update_error:.2e} of its largest element")
        if failures:
            raise CheckFailed(f"{name}: " + "; ".join(failures))

        def cnnc_turn():
            server.stdin.write(f"run {steps}\n")
            server.stdin.flush()
            ms, loss = server.stdout.readline().split()
            return float(ms) / steps, float(loss)

        def torch_turn():
            start = time.perf_counter()
            for _ in range(steps):
                loss = torch_step()
            ms = (time.perf_counter() - start) * 1e3 / steps
            return ms, loss.item()

        for _ in range(WARMUP_STEPS):
            torch_step()
        server.stdin.write(f"run {WARMUP_STEPS}\n")
        server.stdin.flush()
        server.stdout.readline()
        ours, theirs = [], []
        for _ in range(reps):
            ms, ours_last = cnnc_turn()
            ours.append(ms)
            time.sleep(TURN_GAP_SECONDS)
            ms, theirs_last = torch_turn()
            theirs.append(ms)
            time.sleep(TURN_GAP_SECONDS)
        server.stdin.write("quit\n")
        server.stdin.flush()
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    peak_gflops = peak()
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    step_gflop = flops_factor * forward_mflops * batch / 1e3
    return {
        "name": name, "file": net_path.name, "batch": batch, "steps": steps,
        "optimizer": net.train["optimizer"] + (f" m={net.train['momentum']}" if net.train["optimizer"] == "sgd" else ""),
        "lr": net.train["lr"],
        "ours_ms": (ours_median, min(ours)), "theirs_ms": (theirs_median, min(theirs)),
        "ours_ips": images_per_second(ours, batch), "theirs_ips": images_per_second(theirs, batch),
        "ratio": theirs_median / ours_median,
        "gflops": step_gflop / (ours_median / 1e3), "peak": peak_gflops, "flops_factor": flops_factor,
        "losses": (ours_losses, theirs_losses), "loss_error": loss_error, "update_error": update_error, "masked": masked,
        "last_losses": (ours_last, theirs_last), "compile_seconds": compile_seconds,
    }


def images_per_second(step_ms, batch):
    """(median, minimum, maximum) images/s over the turns."""
    rates = [batch * 1e3 / ms for ms in step_ms]
    return statistics.median(rates), min(rates), max(rates)
