"""One library for several targets, dispatching at run time.

    python3 test_multitarget.py CNNC

cnnc compiles LeNet-5 with `--target host,AVX2,SSE4.1` into one library. An
app built with the printed link line runs forward (batch 3 and batch 1) and
one train step, three times in separate processes: with Halide's own CPU
check (the host's variant), with the check told that the first (host)
variant's features are missing (the AVX2 variant, where the CPU has AVX2), and with every check
refused (the last target, SSE4.1, which is taken unchecked). Each run's
outputs must agree with PyTorch's forward to 1e-4 relative, and the three
train-step losses with each other to 1e-5. The two overridden runs must have
consulted the check, so that the choice went through the dispatcher. Also:
a list mixing architectures, and one with an empty entry, are refused with a
message.
"""

import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

import linkline
import netfile
from test_forward import reference_case

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4
TARGETS = "host,x86-64-linux-avx-avx2-f16c-fma-sse41,x86-64-linux-sse41"

APP = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>
#include "lenet5.h"

extern "C" {
typedef int (*can_use_t)(int count, const uint64_t* features);
can_use_t halide_set_custom_can_use_target_features(can_use_t);
int halide_default_can_use_target_features(int count, const uint64_t* features);
}

static int queries = 0, refusedBits = 1 << 30, mostBits = 0;

static int bits(int count, const uint64_t* features) {
  int n = 0;
  for (int i = 0; i < count; ++i) n += __builtin_popcountll(features[i]);
  return n;
}
// Halide's own check, counting the queries and the most features asked for
// (the first target's); variants with `refusedBits` features or more are
// refused.
static int check(int count, const uint64_t* features) {
  ++queries;
  int n = bits(count, features);
  if (n > mostBits) mostBits = n;
  if (n >= refusedBits) return 0;
  return halide_default_can_use_target_features(count, features);
}
static int refuseAll(int, const uint64_t*) { ++queries; return 0; }

int main(int argc, char** argv) {
  // app MODE WEIGHTS INPUT N OUTPUT [REFUSED_BITS]
  if (!std::strcmp(argv[1], "fallback")) halide_set_custom_can_use_target_features(refuseAll);
  else halide_set_custom_can_use_target_features(check);
  if (argc > 6) refusedBits = std::atoi(argv[6]);
  int n = std::atoi(argv[4]);
  size_t inputSize = lenet5::kNetwork.inputSize;
  std::vector<float> x(n * inputSize);
  std::ifstream(argv[3], std::ios::binary).read(reinterpret_cast<char*>(x.data()), x.size() * sizeof(float));
  try {
    lenet5::Model model(7);
    model.load(argv[2]);
    std::vector<float> out(n * lenet5::kOutputs), one(lenet5::kOutputs);
    model.forward(x.data(), n, out.data());
    for (int i = 0; i < n; ++i) {
      model.forward(x.data() + i * inputSize, 1, one.data());
      out.insert(out.end(), one.begin(), one.end());
    }
    std::vector<int32_t> labels(n);
    for (int i = 0; i < n; ++i) labels[i] = i % lenet5::kOutputs;
    out.push_back(model.train_step(x.data(), labels.data(), n));
    std::ofstream(argv[5], std::ios::binary).write(reinterpret_cast<char*>(out.data()), out.size() * sizeof(float));
  } catch (const cnnc::Error& e) {
    std::fprintf(stderr, "cnnc::Error: %s\n", e.what());
    return 1;
  }
  std::printf("queries %d most %d\n", queries, mostBits);
  return 0;
}
"""


def refused(cnnc, work, target, expected):
    """cnnc must refuse `target` with a message containing `expected`."""
    ran = subprocess.run([cnnc, str(ROOT / "examples" / "lenet5.net"), "-o", str(work / "bad.a"),
                          "--target", target], capture_output=True, text=True)
    if ran.returncode == 0 or expected not in ran.stderr:
        return [f"--target {target}: exit {ran.returncode}, stderr {ran.stderr.strip()!r}"]
    print(f"     --target {target}: {ran.stderr.strip()}")
    return []


def main(argv):
    cnnc = argv[1]
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        work = pathlib.Path(scratch)
        problems += refused(cnnc, work, "host,arm-64-linux", "must share architecture")
        problems += refused(cnnc, work, "host,,x86-64-linux", "an empty target")

        net = netfile.load(ROOT / "examples" / "lenet5.net")
        batch = 3
        _, want, _ = reference_case(net, 5, batch, work)

        # Whole pipelines, and split into layer functions (whose buffers
        # must cover what any target's schedule writes).
        for pipelines in ("whole", "layers"):
            print(f"     --pipelines {pipelines}")
            compiled = subprocess.run([cnnc, str(ROOT / "examples" / "lenet5.net"), "-o", str(work / "lenet5.a"),
                                       "--target", TARGETS, "--pipelines", pipelines], capture_output=True, text=True)
            if compiled.returncode != 0:
                print(f"FAIL cnnc --target {TARGETS}: {compiled.stderr.strip()}")
                return 1
            app, problem = linkline.build_app(compiled.stdout, APP, work)
            if problem:
                print(f"FAIL {problem}")
                return 1

            losses = {}
            scale = max(np.abs(want).max(), 1e-6)
            most = None
            for mode in ("host", "middle", "fallback"):
                extra = [str(most)] if mode == "middle" else []
                ran = subprocess.run([str(app), mode, str(work / "weights.safetensors"), str(work / "input.bin"),
                                      str(batch), str(work / f"{mode}.bin")] + extra, capture_output=True, text=True)
                if ran.returncode != 0:
                    problems.append(f"{pipelines} {mode}: app failed ({ran.returncode}): {ran.stderr.strip()}")
                    if mode == "host":
                        break
                    continue
                found = re.search(r"queries (\d+) most (\d+)", ran.stdout)
                queries = int(found.group(1))
                if mode == "host":
                    most = int(found.group(2))  # the first target's feature count: refused next
                if queries == 0:
                    problems.append(f"{pipelines} {mode}: the dispatcher never consulted the feature check")
                got = np.fromfile(work / f"{mode}.bin", dtype="<f4")
                losses[mode] = float(got[-1])
                outputs = got[:-1].reshape(2, batch, -1)
                for label, values in (("batch", outputs[0]), ("batch 1", outputs[1])):
                    error = np.abs(values - want).max() / scale
                    print(f"     {mode} {label}: max error {error:.2e} of output scale {scale:.3g}")
                    if not error <= TOLERANCE:
                        problems.append(f"{pipelines} {mode} {label}: max error {error:.2e}")
                print(f"     {mode}: train-step loss {losses[mode]:.7f}, feature checks {queries}")
            if len(losses) == 3:
                spread = (max(losses.values()) - min(losses.values())) / max(abs(losses["host"]), 1e-12)
                if not spread <= 1e-5:
                    problems.append(f"{pipelines}: train-step losses differ between variants: {losses}")
    print(("FAIL " if problems else "ok   ") + "multitarget" + "".join(f"\n     {p}" for p in problems))
    return 1 if problems else 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main(sys.argv))
