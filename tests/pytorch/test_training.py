"""Whole-network training, cnnc against PyTorch.

    python3 test_training.py CNNC [NETWORK...]

For every example network without dropout (dropout's random masks cannot be
the same as torch's, so those networks are skipped and said so), and for two
small networks written here that cover what the examples do not (mse loss with
SGD nesterov and weight decay; Adam with weight decay and batchnorm on a flat
input): cnnc compiles the network; an app built with exactly the link line cnnc
prints loads weights that PyTorch wrote (random, with spread, batchnorm
statistics included), takes three train_step()s on random batches with random
labels (or targets), writes the three losses and save()s the weights; it
also counts every allocation in the process (malloc interposed), and the
steps after the first, and those after a partial batch, must make none. PyTorch
takes the same three steps from the same weights with torch.optim configured
from the .net file's `train` settings, in float64 so that the reference is
exact to far below the tolerance. Where PyTorch's own float32 steps stray
from its float64 ones by more than a tenth of the tolerance (steps that blow
the loss up), both sides use a tenth of the learning rate, again if need be,
and the table says so. The losses and every tensor after the steps
(batchnorm running statistics included) must agree to 1e-3 relative to each
tensor's scale: max|cnnc - torch| / max(max|torch|, tiny).

NETWORK names an example (its file stem) or one of the small networks here.
"""

import math
import pathlib
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import linkline
import netfile
import safetensors_io
from test_forward import randomize

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Adam's steps are largest relative to the gradient where the gradient is near
# eps (1e-8), i.e. pure float32 rounding of a cancelling sum: there float32
# noise moves a weight by up to lr per step, so Adam networks measure ~1e-4
# (LeNet-5: 2e-4 at a gradient of 1e-8) while SGD ones measure ~1e-6.
TOLERANCE = 1e-3
STEPS = 3
TINY = 1e-12
SLOW_COMPILE_SECONDS = 240

# Small networks for the optimizer and loss variants no example uses.
EXTRA_NETWORKS = {
    # mse on a conv net; SGD with nesterov momentum and weight decay.
    "tiny_mse_nesterov": """
network tiny_mse_nesterov
input 2x8x8
conv1: conv2d filters=4 kernel=3 pad=1 activation=relu
pool1: maxpool kernel=2
fc1:   dense units=5
train loss=mse optimizer=sgd lr=0.05 momentum=0.9 nesterov=true weight_decay=0.01 batch=4 seed=1
""",
    # ResNet-18's layer kinds at a small size: a 7x7 stride-2 stem, a padded
    # stride-2 maxpool, basic blocks with batchnorm and shortcuts (identity and
    # a stride-2 1x1 projection), global average pooling.
    "tiny_resnet": """
network tiny_resnet
input 3x19x19
conv1: conv2d filters=8 kernel=7 stride=2 pad=3 bias=false
bn1:   batchnorm
relu1: relu
pool1: maxpool kernel=3 stride=2 pad=1
b1_conv1: conv2d filters=8 kernel=3 pad=1 bias=false
b1_bn1:   batchnorm
b1_relu:  relu
b1_conv2: conv2d filters=8 kernel=3 pad=1 bias=false
b1_bn2:   batchnorm
b1_out:   add from=b1_bn2,pool1 activation=relu
b2_conv1: conv2d filters=16 kernel=3 stride=2 pad=1 bias=false
b2_bn1:   batchnorm
b2_relu:  relu
b2_conv2: conv2d filters=16 kernel=3 pad=1 bias=false
b2_bn2:   batchnorm
b2_down:  conv2d filters=16 kernel=1 stride=2 bias=false from=b1_out
b2_downbn: batchnorm
b2_out:   add from=b2_bn2,b2_downbn activation=relu
gap: global_avgpool
fc: dense units=10
train loss=cross_entropy optimizer=sgd lr=0.1 momentum=0.9 weight_decay=0.0001 batch=4 seed=1
""",
    # Adam with weight decay and non-default betas/eps; batchnorm on a flat
    # input with non-default eps and momentum; cross_entropy through a softmax.
    "tiny_adam_batchnorm": """
network tiny_adam_batchnorm
input 12
fc1: dense units=16
bn1: batchnorm eps=1e-3 momentum=0.2
act1: relu
fc2: dense units=6
softmax
train loss=cross_entropy optimizer=adam lr=0.01 beta1=0.8 beta2=0.99 eps=1e-6 weight_decay=0.05 batch=4 seed=1
""",
}

APP = r"""
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>
#include "NET.h"

// Every allocation in the process, counted: train_step must allocate
// nothing after its first call for a batch size.
extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_memalign(size_t, size_t);
static std::atomic<long> allocations{0};
extern "C" void* malloc(size_t n) { ++allocations; return __libc_malloc(n); }
extern "C" void* calloc(size_t k, size_t n) { ++allocations; return __libc_calloc(k, n); }
extern "C" void* aligned_alloc(size_t a, size_t n) { ++allocations; return __libc_memalign(a, n); }
extern "C" int posix_memalign(void** p, size_t a, size_t n) {
  ++allocations;
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12;
}

template <typename T>
static std::vector<T> readAll(const char* path, size_t n) {
  std::vector<T> v(n);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), n * sizeof(T));
  if (!in) { std::fprintf(stderr, "short read %s\n", path); std::exit(3); }
  return v;
}

int main(int argc, char** argv) {
  // app WEIGHTS INPUTS TARGETS N STEPS LOSSES SAVED LR
  if (argc != 9) { std::fprintf(stderr, "usage: app WEIGHTS INPUTS TARGETS N STEPS LOSSES SAVED LR\n"); return 2; }
  int n = std::atoi(argv[4]), steps = std::atoi(argv[5]);
  size_t inputSize = NET::kNetwork.inputSize;
  size_t targetSize = TARGET_SIZE;  // per example: 1 label, or kOutputs targets
  std::vector<float> x = readAll<float>(argv[2], steps * n * inputSize);
  std::vector<TARGET_TYPE> targets = readAll<TARGET_TYPE>(argv[3], steps * n * targetSize);
  try {
    NET::Model model(7);
    model.load(argv[1]);
    model.setLearningRate(std::atof(argv[8]));
    std::vector<float> losses;
    losses.reserve(steps);
    long before = 0;
    for (int step = 0; step < steps; ++step) {
      if (step == 1) before = allocations;
      losses.push_back(model.train_step(x.data() + step * n * inputSize, targets.data() + step * n * targetSize, n));
    }
    long steady = allocations - before;
    if (model.optimizerSteps() != steps) {
      std::fprintf(stderr, "optimizerSteps() is %lld after %d steps\n", (long long)model.optimizerSteps(), steps);
      return 4;
    }
    std::ofstream(argv[6], std::ios::binary).write(reinterpret_cast<char*>(losses.data()), losses.size() * sizeof(float));
    model.save(argv[7]);
    // An epoch's partial last batch, then full batches again (the weights
    // compared above are saved already).
    long partial = 0;
    if (n > 1) {
      model.train_step(x.data(), targets.data(), n - 1);
      before = allocations;
      model.train_step(x.data(), targets.data(), n);
      model.train_step(x.data(), targets.data(), n - 1);
      model.train_step(x.data(), targets.data(), n);
      partial = allocations - before;
    }
    std::printf("allocations in later steps: %ld, after a partial batch: %ld\n", steady, partial);
  } catch (const cnnc::Error& e) {
    std::fprintf(stderr, "cnnc::Error: %s\n", e.what());
    return 1;
  }
  return 0;
}
"""


class Outcome:
    """One network's row of the table."""

    def __init__(self, name, optimizer="", batch=0):
        self.name, self.optimizer, self.batch = name, optimizer, batch
        self.loss_error = self.weight_error = None
        self.worst_tensor = ""
        self.problems, self.skipped = [], None
        self.compile_seconds = self.compile_cpu_seconds = None
        self.notes = []
        self.float32_error = self.update_error = None


def describe_optimizer(settings):
    if settings["optimizer"] == "sgd":
        words = [f"sgd lr={settings['lr']:g}"]
        if settings["momentum"]:
            words.append(f"momentum={settings['momentum']:g}")
        if settings["nesterov"]:
            words.append("nesterov")
    else:
        words = [f"adam lr={settings['lr']:g}"]
        if (settings["beta1"], settings["beta2"], settings["eps"]) != (0.9, 0.999, 1e-8):
            words.append(f"betas={settings['beta1']:g},{settings['beta2']:g} eps={settings['eps']:g}")
    if settings["weight_decay"]:
        words.append(f"wd={settings['weight_decay']:g}")
    return " ".join(words) + f" {settings['loss']}"


def reference_training(net, weights, inputs, targets, lr, dtype=torch.float64):
    """PyTorch's losses and final state after the steps, in float64 unless
    told otherwise, with torch.optim set from the .net file
    (netfile.make_optimizer) but for the learning rate."""
    model = netfile.build_model(net).to(dtype).train()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in weights:
                tensor.copy_(weights[name].to(tensor.dtype))
    optimizer = netfile.make_optimizer(model)
    for group in optimizer.param_groups:
        group["lr"] = lr
    losses = []
    for x, target in zip(inputs, targets):
        optimizer.zero_grad()
        value = netfile.loss(model, x.to(dtype), target.to(dtype) if target.is_floating_point() else target)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    state = {k: v.detach().numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    return np.array(losses), state


def state_error(got, want):
    """The largest error of any tensor, relative to its scale, and its name."""
    worst = (0.0, "")
    for name, tensor in want.items():
        error = np.abs(got[name].astype(np.float64) - tensor).max() / max(np.abs(tensor).max(), TINY)
        if not error <= worst[0]:
            worst = (error, name)
    return worst


def conditioned_lr(net, weights, inputs, targets, outcome):
    """The .net file's learning rate, or a tenth of it as many times as it
    takes for PyTorch's own float32 steps to agree with its float64 steps to
    a tenth of the tolerance: where float32 rounding alone moves the result
    past the tolerance (steps that blow the loss up, as ResNet-18's first
    steps from random weights at lr 0.1 do), no float32 implementation could
    pass, and the comparison would test nothing. The float64 reference at
    the chosen rate is returned with it."""
    lr = net.train["lr"]
    for _ in range(4):
        want = reference_training(net, weights, inputs, targets, lr)
        _, single = reference_training(net, weights, inputs, targets, lr, torch.float32)
        error, tensor = state_error(single, want[1])
        if error <= TOLERANCE / 10:
            outcome.float32_error = error
            return lr, want
        print(f"     note: at lr={lr:g} PyTorch's float32 steps differ from its float64 steps by "
              f"{error:.2e} ({tensor}): the steps are ill-conditioned; comparing at lr={lr / 10:g}", flush=True)
        outcome.notes.append(f"lr {lr:g} -> {lr / 10:g} (float32 PyTorch off by {error:.1e})")
        lr /= 10
    outcome.problems.append(f"PyTorch's float32 and float64 steps disagree down to lr={lr * 10:g}")
    return lr * 10, want


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def compile_and_build(cnnc, net_path, net, work, target_type, target_size, outcome):
    """cnnc NET.net, then the app with the printed link line; the app's path or None."""
    started, cpu_before = time.monotonic(), children_cpu_seconds()
    compiled = subprocess.run([cnnc, str(net_path), "-o", str(work / f"{net.name}.a")], capture_output=True, text=True)
    outcome.compile_seconds = time.monotonic() - started
    outcome.compile_cpu_seconds = children_cpu_seconds() - cpu_before  # tells a slow compile from a busy machine
    if compiled.returncode != 0:
        outcome.problems.append(f"cnnc failed: {compiled.stderr.strip()[:2000]}")
        return None
    if outcome.compile_seconds > SLOW_COMPILE_SECONDS:
        print(f"     note: {net.name} took {outcome.compile_seconds:.0f} s to compile "
              f"(over {SLOW_COMPILE_SECONDS} s; {outcome.compile_cpu_seconds:.0f} s of CPU)", flush=True)
    source = APP.replace("TARGET_TYPE", target_type).replace("TARGET_SIZE", target_size).replace("NET", net.name)
    app, problem = linkline.build_app(compiled.stdout, source, work)
    if problem:
        outcome.problems.append(problem)
    return app


def check_network(cnnc, net_path, work):
    net = netfile.load(net_path)
    dropout = [layer.name for layer in net.layers if layer.kind == "dropout"]
    outcome = Outcome(net.name)
    if dropout:
        outcome.skipped = (f"has dropout ({', '.join(dropout)}): its random masks cannot be the same as "
                           "PyTorch's, so steps cannot be compared")
        return outcome
    if not net.train:
        outcome.skipped = "has no train settings"
        return outcome
    settings = net.train
    outcome.optimizer = describe_optimizer(settings)
    batch = 2 if math.prod(net.input) > 100_000 else 4
    outcome.batch = batch

    generator = torch.Generator().manual_seed(23)
    model = netfile.initialize(netfile.build_model(net), generator)
    randomize(model, generator)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    inputs = [torch.rand((batch,) + net.input, generator=generator) for _ in range(STEPS)]
    if settings["loss"] == "cross_entropy":
        classes = model.shapes[net.output.name][1]
        targets = [torch.randint(0, classes, (batch,), generator=generator, dtype=torch.int32) for _ in range(STEPS)]
        target_type, target_size = "int32_t", "1"
    else:
        targets = [torch.randn((batch,) + model.shapes[net.output.name][1:], generator=generator)
                   for _ in range(STEPS)]
        target_type, target_size = "float", "NET::kOutputs"

    safetensors_io.write(work / "weights.safetensors", weights)
    np.concatenate([x.numpy().ravel() for x in inputs]).astype("<f4").tofile(work / "inputs.bin")
    np.concatenate([t.numpy().ravel() for t in targets]).astype("<i4" if target_type == "int32_t" else "<f4") \
        .tofile(work / "targets.bin")

    lr, (want_losses, want_state) = conditioned_lr(net, weights, inputs, targets, outcome)
    if lr != settings["lr"]:
        outcome.optimizer += f" (compared at lr={lr:g})"
    app = compile_and_build(cnnc, net_path, net, work, target_type, target_size, outcome)
    if app is None:
        return outcome
    ran = subprocess.run([str(app), str(work / "weights.safetensors"), str(work / "inputs.bin"),
                          str(work / "targets.bin"), str(batch), str(STEPS), str(work / "losses.bin"),
                          str(work / "saved.safetensors"), repr(lr)], capture_output=True, text=True)
    if ran.returncode != 0:
        how = signal.Signals(-ran.returncode).name if ran.returncode < 0 else f"exit {ran.returncode}"
        outcome.problems.append(f"app failed ({how}): {ran.stderr.strip()[:2000]}")
        return outcome

    counted = re.search(r"allocations in later steps: (\d+), after a partial batch: (\d+)", ran.stdout)
    if not counted or counted.group(1) != "0" or counted.group(2) != "0":
        outcome.problems.append(f"train_step allocated after its first call: {ran.stdout.strip()}")

    got_losses = np.fromfile(work / "losses.bin", dtype="<f4").astype(np.float64)
    if got_losses.shape != want_losses.shape:
        outcome.problems.append(f"{got_losses.size} losses written, {STEPS} expected")
        return outcome
    loss_errors = np.abs(got_losses - want_losses) / np.maximum(np.abs(want_losses), TINY)
    outcome.loss_error = loss_errors.max()
    if not outcome.loss_error <= TOLERANCE:
        outcome.problems.append(f"losses: cnnc {got_losses.tolist()}, PyTorch {want_losses.tolist()}")

    saved, _ = safetensors_io.read(work / "saved.safetensors")
    if set(saved) != set(want_state):
        outcome.problems.append(f"saved tensors differ in names: {sorted(set(saved) ^ set(want_state))}")
    outcome.weight_error = outcome.update_error = 0.0
    for name in sorted(set(saved) & set(want_state)):
        want = want_state[name]
        got = saved[name].astype(np.float64)
        if got.shape != want.shape:
            outcome.problems.append(f"{name}: shape {got.shape}, PyTorch {want.shape}")
            continue
        error = np.abs(got - want).max() / max(np.abs(want).max(), TINY) if want.size else 0.0
        if not error <= outcome.weight_error:  # NaN counts as the worst
            outcome.weight_error, outcome.worst_tensor = error, name
        # For the table: the error relative to how far the tensor moved.
        initial = weights[name].double().numpy()
        movement = np.abs(want - initial).max()
        if movement > 0:
            outcome.update_error = max(outcome.update_error, np.abs((got - initial) - (want - initial)).max() / movement)
        if not error <= TOLERANCE:
            # How far the tensor moved in the steps, to tell a wrong update from rounding.
            moved = np.abs(want - weights[name].double().numpy()).max()
            outcome.problems.append(f"{name}: max error {error:.2e} of its scale {np.abs(want).max():.3g} "
                                    f"(PyTorch moved it by up to {moved:.3g})")
    return outcome


def networks(only):
    """(name, path) of every network to run, the small ones written to `scratch`."""
    chosen = [(path.stem, path) for path in sorted((ROOT / "examples").glob("*.net"))]
    chosen += [(name, None) for name in EXTRA_NETWORKS]
    if only:
        unknown = only - {name for name, _ in chosen}
        if unknown:
            raise SystemExit(f"unknown network(s): {', '.join(sorted(unknown))}")
        chosen = [(name, path) for name, path in chosen if name in only]
    return chosen


def format_error(value):
    return "-" if value is None else f"{value:.2e}"


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    cnnc = argv[1]
    outcomes = []
    for name, path in networks(set(argv[2:])):
        with tempfile.TemporaryDirectory() as scratch:
            work = pathlib.Path(scratch)
            if path is None:
                path = work / f"{name}.net"
                path.write_text(EXTRA_NETWORKS[name].lstrip())
            started = time.monotonic()
            outcome = check_network(cnnc, path, work)
        seconds = time.monotonic() - started
        if outcome.skipped:
            print(f"skip {name}: {outcome.skipped}", flush=True)
        else:
            status = "FAIL" if outcome.problems else "ok  "
            timing = f"{seconds:.0f} s" + (f", compile {outcome.compile_seconds:.0f} s "
                                           f"({outcome.compile_cpu_seconds:.0f} s CPU)"
                                           if outcome.compile_seconds is not None else "")
            print(f"{status} {name} ({timing})" + "".join(f"\n     {p}" for p in outcome.problems), flush=True)
        outcomes.append(outcome)

    print()
    # "of movement": the worst error relative to how far PyTorch moved the
    # tensor (for context, not checked: where the steps are small it is
    # float32 rounding over a small difference); "PyTorch float32": the
    # same error measure for PyTorch's own float32 steps.
    header = ("network", "optimizer", "steps", "batch", "loss error", "weight error (tensor)", "of movement",
              "PyTorch float32", "result")
    rows = []
    for o in outcomes:
        if o.skipped:
            rows.append((o.name, "-", "-", "-", "-", "-", "-", "-",
                         "skipped (dropout)" if "dropout" in o.skipped else "skipped"))
            continue
        weight = format_error(o.weight_error) + (f" ({o.worst_tensor})" if o.worst_tensor else "")
        rows.append((o.name, o.optimizer, str(STEPS), str(o.batch), format_error(o.loss_error), weight,
                     format_error(o.update_error), format_error(o.float32_error),
                     "FAIL" if o.problems else "pass"))
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    ran = [o for o in outcomes if not o.skipped]
    failed = sum(bool(o.problems) for o in ran)
    skipped = len(outcomes) - len(ran)
    print(f"\n{len(ran) - failed} passed, {failed} failed, {skipped} skipped (tolerance {TOLERANCE:g} of each "
          "tensor's scale)")
    return 1 if failed or not ran else 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main(sys.argv))
