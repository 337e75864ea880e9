"""Every example network's forward pass, cnnc against PyTorch.

    python3 test_forward.py CNNC [NETWORK...]

For each network: cnnc compiles it to NET.a + NET.h; a small app built with
exactly the link line cnnc prints loads weights that PyTorch wrote as
safetensors (random, batchnorm statistics included), runs forward on random
inputs (batch 3, and batch 1 through the latency entry point), reads every
layer's activations, and saves the weights back. The outputs and each
layer's activations must agree with torch's eval() forward to 1e-4 relative
(to the largest value), and the saved weights must be the ones loaded, bit
for bit. Networks in SPLIT_TOO are checked a second time compiled as one
pipeline per layer (--pipelines layers; deep networks are by default).
"""

import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch

import linkline
import netfile
import safetensors_io

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4
# Small networks also compiled split, one pipeline per layer: branches and
# concatenation, dense layers, pools dropping edge columns, batchnorms
# folded and not.
SPLIT_TOO = {"inception_block", "lenet5", "mnist_cnn", "cifar10_tutorial", "mlp"}

APP = r"""
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>
#include "NET.h"

static std::vector<float> readFloats(const char* path, size_t n) {
  std::vector<float> v(n);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), n * sizeof(float));
  if (!in) { std::fprintf(stderr, "short read %s\n", path); std::exit(3); }
  return v;
}

int main(int argc, char** argv) {
  // app WEIGHTS INPUT N OUTPUT SAVED ACTIVATIONS
  int n = std::atoi(argv[3]);
  size_t inputSize = NET::kNetwork.inputSize;
  std::vector<float> x = readFloats(argv[2], n * inputSize);
  try {
    NET::Model model(7);
    std::vector<float> out(n * NET::kOutputs), one(NET::kOutputs);
    model.forward(x.data(), n, out.data());  // prepared from the seed's weights: load must redo it
    model.load(argv[1]);
    model.forward(x.data(), n, out.data());
    {  // weights written in place: through parameter(), and through pointers kept from before
       // a forward, announced by parametersChanged(); both must give the loaded model's output
      NET::Model copy(5), kept(5);
      std::vector<float*> pointers;
      for (const std::string& name : model.parameterNames()) pointers.push_back(kept.parameter(name));
      std::vector<float> got(out.size());
      copy.forward(x.data(), n, got.data());
      kept.forward(x.data(), n, got.data());
      size_t p = 0;
      for (const std::string& name : model.parameterNames()) {
        size_t count = 1;
        for (int64_t d : model.parameterShape(name)) count *= static_cast<size_t>(d);
        const float* from = static_cast<const NET::Model&>(model).parameter(name);
        std::copy(from, from + count, copy.parameter(name));
        std::copy(from, from + count, pointers[p++]);
      }
      kept.parametersChanged();
      for (NET::Model* written : {&copy, &kept}) {
        written->forward(x.data(), n, got.data());
        if (got != out) {
          std::fprintf(stderr, "forward after writing the weights in place differs\n");
          return 5;
        }
      }
    }
    try {  // not recorded: a clear error, not stale or empty maps
      model.activations(NET::kNetwork.layers[0].name);
      std::fprintf(stderr, "activations without record_activations did not throw\n");
      return 4;
    } catch (const cnnc::Error&) {
    }
    model.record_activations(true);
    model.forward(x.data(), n, out.data());
    std::ofstream layers(argv[6], std::ios::binary);  // every layer's output for the batch
    for (int l = 0; l < NET::kNetwork.layerCount; ++l) {
      std::vector<float> a = model.activations(NET::kNetwork.layers[l].name);
      layers.write(reinterpret_cast<char*>(a.data()), a.size() * sizeof(float));
    }
    for (int i = 0; i < n; ++i) {  // batch 1 goes through its own entry point
      model.forward(x.data() + i * inputSize, 1, one.data());
      for (int k = 0; k < NET::kOutputs; ++k)
        out.push_back(one[k]);
    }
    std::ofstream(argv[4], std::ios::binary).write(reinterpret_cast<char*>(out.data()), out.size() * sizeof(float));
    model.save(argv[5]);
  } catch (const cnnc::Error& e) {
    std::fprintf(stderr, "cnnc::Error: %s\n", e.what());
    return 1;
  }
  return 0;
}
"""


def randomize(model, generator):
    """Random weights with some spread, and batchnorm statistics that matter."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.2 - 0.1)
            elif name.endswith(".weight") and tensor.dim() == 1:  # batchnorm scale
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)


def reference_case(net, seed, batch, work):
    """Random weights and inputs written to work/weights.safetensors and
    work/input.bin; returns the weights and PyTorch's eval() output
    (batch x outputs)."""
    model = netfile.build_model(net).eval()
    generator = torch.Generator().manual_seed(seed)
    randomize(model, generator)
    x = torch.rand((batch,) + net.input, generator=generator)
    with torch.no_grad():
        layers = model(x, all_outputs=True)
    want = layers[net.output.name].reshape(batch, -1).numpy()
    weights = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    safetensors_io.write(work / "weights.safetensors", weights)
    x.numpy().astype("<f4").tofile(work / "input.bin")
    return weights, want, {layer.name: layers[layer.name].numpy() for layer in net.layers}


def check_network(cnnc, path, work, options=()):
    net = netfile.load(path)
    batch = 3 if net.input[-1] < 100 else 1
    weights, want, layers = reference_case(net, 11, batch, work)

    # Inference alone is compared here (test_training.py covers training).
    compiled = subprocess.run([cnnc, str(path), "-o", str(work / f"{net.name}.a"), "--inference-only", *options],
                              capture_output=True, text=True)
    if compiled.returncode != 0:
        return [f"cnnc failed: {compiled.stderr.strip()}"]
    app, problem = linkline.build_app(compiled.stdout, APP.replace("NET", net.name), work)
    if problem:
        return [problem]
    ran = subprocess.run([str(app), str(work / "weights.safetensors"), str(work / "input.bin"), str(batch),
                          str(work / "output.bin"), str(work / "saved.safetensors"), str(work / "layers.bin")],
                         capture_output=True, text=True)
    if ran.returncode != 0:
        return [f"app failed: {ran.stderr.strip()}"]
    got = np.fromfile(work / "output.bin", dtype="<f4").reshape(2, batch, -1)
    problems = []
    scale = max(np.abs(want).max(), 1e-6)
    for label, values in (("batch", got[0]), ("batch 1", got[1])):
        error = np.abs(values - want).max() / scale
        print(f"     {net.name} {label}: max error {error:.2e} of output scale {scale:.3g}")
        if not error <= TOLERANCE:
            print(f"     first outputs: cnnc {values[0][:6]}, PyTorch {want[0][:6]}")
        if not error <= TOLERANCE:
            problems.append(f"{label}: max error {error:.2e} relative to the output scale")
    # Model::activations after the batch: every layer's output, NCHW.
    activations = np.fromfile(work / "layers.bin", dtype="<f4")
    offset, worst = 0, (0.0, None)
    for name, reference in layers.items():
        values = activations[offset:offset + reference.size].reshape(reference.shape)
        offset += reference.size
        error = np.abs(values - reference).max() / max(np.abs(reference).max(), 1e-6)
        worst = max(worst, (error, name), key=lambda w: w[0])
    print(f"     {net.name} activations: max error {worst[0]:.2e} (layer {worst[1]})")
    if offset != activations.size or not worst[0] <= TOLERANCE:
        problems.append(f"activations: max error {worst[0]:.2e} in layer {worst[1]} "
                        f"({activations.size} values for {offset})")
    saved, metadata = safetensors_io.read(work / "saved.safetensors")
    if metadata.get("format") != "cnnc" or metadata.get("network") != net.name:
        problems.append(f"saved metadata {metadata}")
    for name, tensor in weights.items():
        if name not in saved or not np.array_equal(saved[name], tensor.numpy()):
            problems.append(f"saved tensor {name} differs from the loaded one")
    if set(saved) != set(weights):
        problems.append(f"saved tensors {sorted(set(saved) ^ set(weights))} differ")
    return problems


def main(argv):
    cnnc = argv[1]
    only = set(argv[2:])
    passed = failed = 0
    for path in sorted((ROOT / "examples").glob("*.net")):
        if only and path.stem not in only:
            continue
        for options in [()] + ([("--pipelines", "layers")] if path.stem in SPLIT_TOO else []):
            with tempfile.TemporaryDirectory() as work:
                problems = check_network(cnnc, path, pathlib.Path(work), options)
            label = path.stem + (" " + " ".join(options) if options else "")
            print(("FAIL " if problems else "ok   ") + label + "".join(f"\n     {p}" for p in problems), flush=True)
            failed += bool(problems)
            passed += not problems
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main(sys.argv))
