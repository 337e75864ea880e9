"""An independent PyTorch reference of the .net language.

Parses a .net file (written from NET-FORMAT.md, not from cnnc's C++) and
builds the same network as a torch.nn.Module whose submodules carry the
layers' names, so that state_dict() keys are the safetensors names of API.md
(`conv1.weight`, `bn1.running_mean`, ...). Shapes come from torch itself, so
a mistake in cnnc's shape inference shows up as a disagreement.

    python3 netfile.py params FILE.net     per-layer shapes and parameter counts
"""

import re
import sys

import torch
import torch.nn as nn

# Keys and defaults per kind (NET-FORMAT.md's layer table); None = required.
KINDS = {
    "conv2d": {"filters": None, "kernel": None, "stride": "1", "pad": "0", "dilation": "1",
               "groups": "1", "bias": "true", "activation": "none", "init": "default"},
    "maxpool": {"kernel": None, "stride": None, "pad": "0"},
    "avgpool": {"kernel": None, "stride": None, "pad": "0"},
    "global_avgpool": {},
    "flatten": {},
    "dense": {"units": None, "bias": "true", "activation": "none", "init": "default"},
    "batchnorm": {"eps": "1e-5", "momentum": "0.1"},
    "dropout": {"rate": "0.5"},
    "add": {"activation": "none"},
    "concat": {},
    "relu": {}, "sigmoid": {}, "tanh": {}, "softmax": {},
    "leaky_relu": {"alpha": "0.01"},
}


class Layer:
    def __init__(self, name, kind, keys, inputs):
        self.name, self.kind, self.keys, self.inputs = name, kind, keys, inputs

    def size(self, key):
        """`N` or `HxW` as (h, w)."""
        parts = [int(p) for p in self.keys[key].split("x")]
        return (parts[0], parts[0]) if len(parts) == 1 else tuple(parts)


class Net:
    def __init__(self):
        self.name, self.input, self.layers, self.train = None, None, [], {}


def statements(text):
    """Logical lines: comments removed, `\\` continuations joined."""
    pending = ""
    for line in text.splitlines():
        line = line.split("#", 1)[0].rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            yield line
    if pending.strip():
        yield pending.strip()


def parse(text):
    net = Net()
    counts = {}
    for line in statements(text):
        words = line.split()
        name = None
        if words[0].endswith(":"):
            name, words = words[0][:-1], words[1:]
        elif len(words) > 1 and words[1] == ":":
            name, words = words[0], words[2:]
        head, rest = words[0], words[1:]
        if name is None and head == "network":
            net.name = rest[0]
            continue
        if name is None and head == "input":
            net.input = tuple(int(d) for d in rest[0].split("x"))
            continue
        keys = dict(w.split("=", 1) for w in rest)
        if name is None and head == "train":
            for k in keys:
                if k in net.train:
                    raise ValueError(f"train key {k} given twice")
            net.train.update(keys)
            continue
        if head not in KINDS:
            raise ValueError(f"unknown layer kind {head}")
        counts[head] = counts.get(head, 0) + 1
        name = name or f"{head}{counts[head]}"
        inputs = keys.pop("from").split(",") if "from" in keys else None
        spec = KINDS[head]
        for k in keys:
            if k not in spec:
                raise ValueError(f"{name}: unknown key {k}")
        full = {}
        for k, default in spec.items():
            if k in keys:
                full[k] = keys[k]
            elif default is not None:
                full[k] = default
            elif head in ("maxpool", "avgpool") and k == "stride":
                full[k] = keys["kernel"]
            else:
                raise ValueError(f"{name}: missing {k}")
        if inputs is None:
            inputs = [net.layers[-1].name if net.layers else "input"]
        net.layers.append(Layer(name, head, full, inputs))
    if net.name is None or net.input is None or not net.layers:
        raise ValueError("network, input and at least one layer are required")
    return net


def activation(name, alpha=0.01):
    return {"none": nn.Identity(), "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(alpha),
            "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}[name]


class Model(nn.Module):
    """Walks the layers in file order; each reads the outputs its `from` names."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.post = {}  # layer name -> activation applied after the op
        shapes = {"input": (1,) + net.input}
        probe = {"input": torch.zeros((1,) + net.input)}
        for layer in net.layers:
            ins = [shapes[i] for i in layer.inputs]
            module = self._module(layer, ins[0])
            if module is not None:
                self.add_module(layer.name, module)
            act = layer.keys.get("activation", "none")
            self.post[layer.name] = activation(act)
            probe[layer.name] = self._apply(layer, [probe[i] for i in layer.inputs])
            shapes[layer.name] = tuple(probe[layer.name].shape)
        self.shapes = shapes

    def _module(self, layer, in_shape):
        k = layer.keys
        if layer.kind == "conv2d":
            pad = k["pad"]
            kernel, dilation = layer.size("kernel"), layer.size("dilation")
            if pad == "same":
                padding = tuple(d * (kk - 1) // 2 for kk, d in zip(kernel, dilation))
            else:
                padding = layer.size("pad")
            return nn.Conv2d(in_shape[1], int(k["filters"]), kernel, stride=layer.size("stride"),
                             padding=padding, dilation=dilation, groups=int(k["groups"]),
                             bias=k["bias"] == "true")
        if layer.kind == "maxpool":
            return nn.MaxPool2d(layer.size("kernel"), layer.size("stride"), layer.size("pad"))
        if layer.kind == "avgpool":
            return nn.AvgPool2d(layer.size("kernel"), layer.size("stride"), layer.size("pad"),
                                count_include_pad=True)
        if layer.kind == "global_avgpool":
            return nn.AdaptiveAvgPool2d(1)
        if layer.kind == "dense":
            features = 1
            for d in in_shape[1:]:
                features *= d
            return nn.Linear(features, int(k["units"]), bias=k["bias"] == "true")
        if layer.kind == "batchnorm":
            cls = nn.BatchNorm2d if len(in_shape) == 4 else nn.BatchNorm1d
            return cls(in_shape[1], eps=float(k["eps"]), momentum=float(k["momentum"]))
        if layer.kind == "dropout":
            return nn.Dropout(float(k["rate"]))
        if layer.kind == "leaky_relu":
            return nn.LeakyReLU(float(k["alpha"]))
        if layer.kind in ("relu", "sigmoid", "tanh"):
            return activation(layer.kind)
        if layer.kind == "softmax":
            return nn.Softmax(dim=1)
        return None  # flatten, add, concat have no module

    def _apply(self, layer, xs):
        if layer.kind == "flatten":
            y = xs[0].flatten(1)
        elif layer.kind == "dense":
            y = getattr(self, layer.name)(xs[0].flatten(1))
        elif layer.kind == "add":
            y = xs[0]
            for x in xs[1:]:
                y = y + x
        elif layer.kind == "concat":
            y = torch.cat(xs, dim=1)
        else:
            y = getattr(self, layer.name)(xs[0])
        return self.post[layer.name](y)

    def forward(self, x, all_outputs=False):
        outputs = {"input": x}
        for layer in self.net.layers:
            outputs[layer.name] = self._apply(layer, [outputs[i] for i in layer.inputs])
        return outputs if all_outputs else outputs[self.net.layers[-1].name]


def build_model(net):
    return Model(net)


def load(path):
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def layer_params(model, layer):
    module = getattr(model, layer.name, None)
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def main(argv):
    if len(argv) != 3 or argv[1] != "params":
        print(__doc__)
        return 2
    net = load(argv[2])
    model = build_model(net)
    for layer in net.layers:
        shape = "x".join(str(d) for d in model.shapes[layer.name][1:])
        print(f"{layer.name:20} {layer.kind:15} {shape:15} {layer_params(model, layer):>12,}")
    print(f"total: {sum(p.numel() for p in model.parameters()):,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
