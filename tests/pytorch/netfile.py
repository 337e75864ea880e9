"""An independent PyTorch reference of the .net language.

Written from NET-FORMAT.md alone (not from cnnc's sources), so that where the
two disagree, one of them is wrong and a test can say so.

    net = load("examples/lenet5.net")      # or parse(text); raises ValueError
    model = build_model(net)               # torch.nn.Module, train() mode
    y = model(x)                           # x: N x C x H x W (or N x features)

parse() checks everything the spec calls an error, shapes included (by the
spec's formulas). build_model() then builds the network from torch.nn modules
named like the layers, so state_dict() keys are API.md's safetensors names
(`conv1.weight`, `bn1.running_mean`, ...); every size a module needs (input
channels, dense in_features) comes from the tensors of a dry run through torch
itself, so a mistake in cnnc's shape inference shows up as a disagreement.

Training helpers follow the spec's `train` semantics with PyTorch's own
classes: initialize(), loss(), make_optimizer(), make_scheduler().

    python3 netfile.py params FILE.net   per-layer output shapes and parameter counts
"""

import math
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_INT = 2**31 - 1       # sizes and counts; Halide indexes with int32
MAX_ELEMENTS = 2**31 - 1  # elements of one example's tensor (Halide's buffer limit)
MAX_SEED = 2**64 - 1      # Model(uint64_t seed)
MAX_LINE_BYTES = 64 * 1024

REQUIRED = object()  # marks a key without a default

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
INTEGER = re.compile(r"[+-]?[0-9]+\Z")
REAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
SIZE = re.compile(r"([0-9]+)x([0-9]+)\Z")
# One token: a word (identifier, number, dimensions such as 5x5 or 1e-5) or
# one of the punctuation marks of `name: kind key=value,value`.
TOKEN = re.compile(r"([A-Za-z0-9_.+-]+)|([=,:])")
BLANKS = " \t\r\f\v"

# Names that cannot be a C++ namespace: keywords, alternative tokens, names the
# generated code or its headers already use, and macros of the C library.
CXX_RESERVED = set("""
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char
    char8_t char16_t char32_t class compl concept const consteval constexpr
    constinit const_cast continue co_await co_return co_yield decltype default
    delete do double dynamic_cast else enum explicit export extern false float
    for friend goto if inline int long mutable namespace new noexcept not not_eq
    nullptr operator or or_eq private protected public register
    reinterpret_cast requires return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef
    typeid typename union unsigned using virtual void volatile wchar_t while xor
    xor_eq std cnnc Halide NULL errno EOF
""".split())


# --- value types: each turns a value's text into a Python value or raises ---

def whole(low, high=MAX_INT):
    def convert(key, text):
        if not INTEGER.match(text):
            raise ValueError(f"'{key}' expects a whole number, got '{text}'")
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"'{key}' must be in [{low}, {high}], got {value}")
        return value
    return convert


def real(low=-math.inf, high=math.inf, low_open=False, high_open=False):
    def convert(key, text):
        if not REAL.match(text):
            raise ValueError(f"'{key}' expects a number, got '{text}'")
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number {text} is out of range for '{key}'")
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            raise ValueError(f"'{key}' = {value} is out of range")
        return value
    return convert


def boolean(key, text):
    if text not in ("true", "false"):
        raise ValueError(f"'{key}' expects true or false, got '{text}'")
    return text == "true"


def choice(*values):
    def convert(key, text):
        if text not in values:
            raise ValueError(f"unknown value '{text}' for '{key}' (expected one of {', '.join(values)})")
        return text
    return convert


def size(low):
    """`N` (both axes) or `HxW`, as (h, w)."""
    def convert(key, text):
        match = SIZE.match(text)
        if INTEGER.match(text):  # a plain number may carry a sign, as any number
            h = w = int(text)
        elif match:
            h, w = int(match.group(1)), int(match.group(2))
        else:
            raise ValueError(f"'{key}' expects N or HxW, got '{text}'")
        if not (low <= h <= MAX_INT and low <= w <= MAX_INT):
            raise ValueError(f"'{key}' sizes must be in [{low}, {MAX_INT}], got '{text}'")
        return (h, w)
    return convert


def padding(key, text):
    return "same" if text == "same" else size(0)(key, text)


ACTIVATIONS = ("none", "relu", "leaky_relu", "sigmoid", "tanh")
INITS = ("default", "he_normal", "he_uniform", "xavier_uniform", "xavier_normal", "zeros")

# NET-FORMAT.md's layer table: kind -> key -> (type, default). A pool's stride
# defaults to its kernel (filled in by parse). Every kind also takes `from`.
POOL_KEYS = {"kernel": (size(1), REQUIRED), "stride": (size(1), None), "pad": (padding, (0, 0))}
KINDS = {
    "conv2d": {
        "filters": (whole(1), REQUIRED), "kernel": (size(1), REQUIRED), "stride": (size(1), (1, 1)),
        "pad": (padding, (0, 0)), "dilation": (size(1), (1, 1)), "groups": (whole(1), 1),
        "bias": (boolean, True), "activation": (choice(*ACTIVATIONS), "none"), "init": (choice(*INITS), "default"),
    },
    "maxpool": POOL_KEYS,
    "avgpool": POOL_KEYS,
    "global_avgpool": {},
    "flatten": {},
    "dense": {
        "units": (whole(1), REQUIRED), "bias": (boolean, True),
        "activation": (choice(*ACTIVATIONS), "none"), "init": (choice(*INITS), "default"),
    },
    "batchnorm": {"eps": (real(0, low_open=True), 1e-5), "momentum": (real(0, 1), 0.1)},
    "dropout": {"rate": (real(0, 1, high_open=True), 0.5)},
    "add": {"activation": (choice(*ACTIVATIONS), "none")},
    "concat": {},
    "relu": {}, "sigmoid": {}, "tanh": {}, "softmax": {},
    "leaky_relu": {"alpha": (real(), 0.01)},
}
MULTI_INPUT = ("add", "concat")
IMAGE_ONLY = ("conv2d", "maxpool", "avgpool", "global_avgpool")

# The training settings table. Keys that belong to one optimizer or schedule
# only get their defaults when that one is chosen.
TRAIN_KEYS = {
    "loss": (choice("cross_entropy", "mse"), REQUIRED),
    "optimizer": (choice("sgd", "adam"), "sgd"),
    "lr": (real(0), 0.01),
    "momentum": (real(0), 0.0),
    "nesterov": (boolean, False),
    "beta1": (real(0, 1, high_open=True), 0.9),
    "beta2": (real(0, 1, high_open=True), 0.999),
    "eps": (real(0), 1e-8),
    "weight_decay": (real(0), 0.0),
    "lr_schedule": (choice("constant", "step", "cosine"), "constant"),
    "step_size": (whole(1), REQUIRED),
    "gamma": (real(0, low_open=True), 0.1),  # not in the spec; StepLR's default
    "batch": (whole(1), 64),
    "epochs": (whole(1), 10),
    "seed": (whole(0, MAX_SEED), 0),
}
ONLY_WITH = {  # key -> (setting, value it belongs to)
    "momentum": ("optimizer", "sgd"), "nesterov": ("optimizer", "sgd"),
    "beta1": ("optimizer", "adam"), "beta2": ("optimizer", "adam"), "eps": ("optimizer", "adam"),
    "step_size": ("lr_schedule", "step"), "gamma": ("lr_schedule", "step"),
}


class Layer:
    """One layer: `keys` holds every key of its kind with typed values
    (sizes as (h, w) tuples, `pad=same` resolved), defaults filled in;
    `given` the keys the file wrote; `inputs` the names it reads."""

    def __init__(self, name, kind, keys, given, inputs, line):
        self.name, self.kind, self.keys, self.given, self.inputs, self.line = name, kind, keys, given, inputs, line
        self.shape = None  # one example's output shape, by the spec's formulas

    def __repr__(self):
        return f"Layer({self.name}: {self.kind} {self.keys} from={','.join(self.inputs)})"


class Net:
    """A checked network: `name`, `input` (one example's shape as a tuple),
    `layers` in file order, `shapes` (layer name or 'input' -> shape),
    `train` (typed settings with defaults; empty without a `train` statement)
    and `train_given` (the keys the file wrote)."""

    def __init__(self):
        self.name, self.input, self.layers = None, None, []
        self.train, self.train_given, self.shapes = {}, {}, {}

    def layer(self, name):
        return next(layer for layer in self.layers if layer.name == name)

    @property
    def output(self):
        return self.layers[-1]


# --- lexical level -----------------------------------------------------------

def decode(data):
    """Text of a file, refusing what the spec says is not text."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"file is not UTF-8 text: invalid byte 0x{data[e.start]:02X}") from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark is not content
    if not text:
        raise ValueError("file is empty")
    for number, line in enumerate(text.split("\n"), 1):
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            raise ValueError(f"line {number} is longer than 64 KiB")
        bad = re.search(r"[\x00-\x08\x0e-\x1f\x7f]", line)
        if bad:
            raise ValueError(f"line {number}: file is not text: control byte 0x{ord(bad.group()):02X}")
    return text


def statements(text):
    """(line number, logical line) pairs: comments removed, a `\\` ending a
    line (after its comment is removed) joins the next line with a space."""
    pending, start = None, 0
    for number, line in enumerate(text.split("\n"), 1):
        line = line.split("#", 1)[0].rstrip(BLANKS)
        if pending is None:
            pending, start = "", number
        joined = line.endswith("\\")
        pending += (line[:-1] if joined else line) + " "
        if not joined:
            if pending.strip(BLANKS):
                yield start, pending
            pending = None
    if pending is not None and pending.strip(BLANKS):
        yield start, pending  # a `\` on the last line joins nothing


def tokens(line):
    """[(text, spaced)]: each token and whether blanks come before it."""
    result, position = [], 0
    while True:
        stripped = position
        while stripped < len(line) and line[stripped] in BLANKS:
            stripped += 1
        if stripped == len(line):
            return result
        match = TOKEN.match(line, stripped)
        if not match:
            raise ValueError(f"unexpected character '{line[stripped]}'")
        result.append((match.group(), stripped > position))
        position = match.end()


def key_values(toks):
    """`key=value` pairs of a statement, values as lists (`from=a,b`)."""
    pairs, i = {}, 0
    while i < len(toks):
        key = toks[i][0]
        if not IDENTIFIER.match(key):
            raise ValueError(f"expected key=value, found '{key}'")
        if i + 1 >= len(toks) or toks[i + 1][0] != "=":
            raise ValueError(f"expected '=' after '{key}'")
        if i + 2 >= len(toks) or toks[i + 2][0] in "=,:":
            raise ValueError(f"expected a value for '{key}'")
        values, i = [toks[i + 2][0]], i + 3
        while i < len(toks) and toks[i][0] == ",":
            # Lists are written without spaces: `from=a,b`.
            if toks[i][1] or i + 1 >= len(toks) or toks[i + 1][1] or toks[i + 1][0] in "=,:":
                raise ValueError(f"a list is written without spaces around ',' (in '{key}')")
            values.append(toks[i + 1][0])
            i += 2
        if key in pairs:
            raise ValueError(f"key '{key}' given twice in this statement")
        pairs[key] = values
    return pairs


def single(key, values):
    if len(values) != 1:
        raise ValueError(f"'{key}' takes one value, got a list")
    return values[0]


# --- statements ----------------------------------------------------------------

def parse(text):
    """A Net from the text (or bytes) of a .net file; ValueError on any error."""
    text = decode(text)
    net, counts, positions = Net(), {}, {}
    seen_network = False
    train_lines = []
    for number, line in statements(text):
        try:
            toks = tokens(line)
            name = None
            if len(toks) >= 2 and toks[1][0] == ":":
                name, toks = toks[0][0], toks[2:]
                if not IDENTIFIER.match(name):
                    raise ValueError(f"a layer name must be an identifier, got '{name}'")
                if not toks:
                    raise ValueError(f"expected a layer kind after '{name}:'")
            head, rest = toks[0][0], toks[1:]
            if not IDENTIFIER.match(head):
                raise ValueError(f"expected a statement, found '{head}'")
            if not seen_network and not (name is None and head == "network"):
                raise ValueError("expected 'network NAME' as the first statement")
            if name is None and head == "network":
                if seen_network:
                    raise ValueError("'network' given twice")
                if len(rest) != 1 or not IDENTIFIER.match(rest[0][0]):
                    raise ValueError("expected 'network NAME'")
                net.name = rest[0][0]
                if net.name in CXX_RESERVED or "__" in net.name or re.match(r"_[A-Z]", net.name):
                    raise ValueError(f"network name '{net.name}' cannot be a C++ namespace")
                seen_network = True
            elif name is None and head == "input":
                if net.input is not None:
                    raise ValueError("'input' given twice")
                if net.layers:
                    raise ValueError("'input' must come before the first layer")
                if len(rest) != 1 or not re.fullmatch(r"[+-]?[0-9]+|[0-9]+(x[0-9]+)*", rest[0][0]):
                    raise ValueError("expected 'input CxHxW' or 'input N'")
                dims = tuple(int(d) for d in rest[0][0].split("x"))
                if len(dims) not in (1, 3):
                    raise ValueError(f"input is CxHxW (an image) or N (a vector), got {rest[0][0]}")
                if min(dims) < 1 or max(dims) > MAX_INT or math.prod(dims) > MAX_ELEMENTS:
                    raise ValueError(f"input sizes out of range: {rest[0][0]}")
                net.input = dims
                net.shapes["input"] = dims
            elif name is None and head == "train":
                for key, values in key_values(rest).items():
                    if key not in TRAIN_KEYS:
                        raise ValueError(f"unknown train key '{key}'")
                    if key in net.train_given:
                        raise ValueError(f"train key '{key}' given twice")
                    net.train_given[key] = TRAIN_KEYS[key][0](key, single(key, values))
                train_lines.append(number)
            else:
                if head not in KINDS:
                    raise ValueError(f"unknown statement or layer kind '{head}'")
                if net.input is None:
                    raise ValueError("a layer before the 'input' statement")
                counts[head] = counts.get(head, 0) + 1
                name = name or f"{head}{counts[head]}"
                if name == "input":
                    raise ValueError("'input' names the network input and cannot name a layer")
                if name in positions:
                    raise ValueError(f"duplicate layer name '{name}' (first at line {positions[name]})")
                layer = make_layer(name, head, key_values(rest), number, positions, net)
                layer.shape = infer_shape(layer, [net.shapes[i] for i in layer.inputs])
                net.layers.append(layer)
                net.shapes[name] = layer.shape
                positions[name] = number
        except ValueError as e:
            raise ValueError(f"line {number}: {e}") from None
    if not seen_network:
        raise ValueError("file has no statements; expected 'network NAME'")
    if net.input is None:
        raise ValueError("'input' statement missing")
    if not net.layers:
        raise ValueError("the network has no layers")
    if train_lines:
        try:
            net.train = train_settings(net.train_given, net.output.shape)
        except ValueError as e:
            raise ValueError(f"line {train_lines[0]}: {e}") from None
    return net


def make_layer(name, kind, pairs, line, positions, net):
    spec = KINDS[kind]
    inputs = pairs.pop("from", None)
    if inputs is None:
        if kind in MULTI_INPUT:
            raise ValueError(f"{kind} '{name}' needs from= with two or more layers")
        inputs = [net.layers[-1].name if net.layers else "input"]
    for source in inputs:
        if not IDENTIFIER.match(source):
            raise ValueError(f"from= expects layer names, got '{source}'")
        if source != "input" and source not in positions:
            raise ValueError(f"from= names '{source}', which is not an earlier layer")
    if kind in MULTI_INPUT and len(inputs) < 2:
        raise ValueError(f"{kind} takes at least 2 layers in from=, got {len(inputs)}")
    if kind not in MULTI_INPUT and len(inputs) != 1:
        raise ValueError(f"{kind} takes one layer in from=, got {len(inputs)}")
    keys = {}
    for key, values in pairs.items():
        if key not in spec:
            raise ValueError(f"unknown key '{key}' for {kind}")
        keys[key] = spec[key][0](key, single(key, values))
    given = set(keys) | ({"from"} if "from" in pairs else set())
    for key, (_, default) in spec.items():
        if key in keys:
            continue
        if default is REQUIRED:
            raise ValueError(f"{kind} '{name}' is missing the required key '{key}'")
        keys[key] = default if default is not None else keys["kernel"]  # pool stride = kernel
    return Layer(name, kind, keys, given, inputs, line)


def resolve_padding(layer):
    """Sets `pad=same` to dilation*(kernel-1)/2 per axis (odd kernels only)."""
    keys = layer.keys
    dilation = keys.get("dilation", (1, 1))
    if keys["pad"] == "same":
        if keys["kernel"][0] % 2 == 0 or keys["kernel"][1] % 2 == 0:
            raise ValueError(f"{layer.kind} '{layer.name}': pad=same needs an odd kernel")
        keys["pad"] = tuple(d * (k - 1) // 2 for k, d in zip(keys["kernel"], dilation))


def infer_shape(layer, shapes):
    """One example's output shape by NET-FORMAT.md's rules, or ValueError."""
    kind, keys, shape = layer.kind, layer.keys, shapes[0]
    where = f"{kind} '{layer.name}'"
    if kind in IMAGE_ONLY and len(shape) != 3:
        raise ValueError(f"{where} needs an image input (CxHxW), got {fmt(shape)}")
    if kind in ("conv2d", "maxpool", "avgpool"):
        resolve_padding(layer)
        dilation = keys.get("dilation", (1, 1))
        spatial = []
        for axis in (0, 1):
            extent = shape[1 + axis] + 2 * keys["pad"][axis]
            reach = dilation[axis] * (keys["kernel"][axis] - 1) + 1
            if reach > extent:
                raise ValueError(f"{where}: the kernel reaches {reach} pixels, the padded input has {extent}")
            spatial.append((extent - reach) // keys["stride"][axis] + 1)
        channels = shape[0]
        if kind == "conv2d":
            if channels % keys["groups"] or keys["filters"] % keys["groups"]:
                raise ValueError(f"{where}: groups={keys['groups']} must divide {channels} input channels "
                                 f"and {keys['filters']} filters")
            channels = keys["filters"]
        out = (channels, *spatial)
    elif kind == "global_avgpool":
        out = (shape[0], 1, 1)
    elif kind == "flatten":
        out = (math.prod(shape),)
    elif kind == "dense":
        out = (keys["units"],)
    elif kind == "add":
        if any(s != shape for s in shapes):
            raise ValueError(f"{where}: inputs differ in shape: {', '.join(fmt(s) for s in shapes)}")
        out = shape
    elif kind == "concat":
        if any(len(s) != len(shape) or s[1:] != shape[1:] for s in shapes):
            raise ValueError(f"{where}: inputs need equal rank and height and width: "
                             f"{', '.join(fmt(s) for s in shapes)}")
        out = (sum(s[0] for s in shapes), *shape[1:])
    else:  # batchnorm, dropout and the activations keep the shape
        out = shape
    if math.prod(out) > MAX_ELEMENTS:
        raise ValueError(f"the output of '{layer.name}' has shape {fmt(out)}: more than 2^31-1 elements")
    return out


def train_settings(given, output_shape):
    """The full, checked training settings: the given keys and the defaults
    of those that apply to the chosen optimizer and schedule."""
    settings = {}
    for key, (_, default) in TRAIN_KEYS.items():
        owner = ONLY_WITH.get(key)
        chosen = owner and given.get(owner[0], TRAIN_KEYS[owner[0]][1])
        if owner and chosen != owner[1]:
            if key in given:
                raise ValueError(f"train key '{key}' applies only with {owner[0]}={owner[1]}")
            continue
        if key in given:
            settings[key] = given[key]
        elif default is REQUIRED:
            raise ValueError(f"train settings need '{key}'" + (" (with lr_schedule=step)" if owner else ""))
        else:
            settings[key] = default
    if settings.get("nesterov") and settings["momentum"] <= 0:
        raise ValueError("nesterov=true needs momentum greater than 0 (as torch.optim.SGD)")
    # A class vector: flat, or C x 1 x 1 (a fully convolutional classifier).
    if settings["loss"] == "cross_entropy" and not (len(output_shape) == 1 or output_shape[1:] == (1, 1)):
        raise ValueError(f"loss=cross_entropy needs a vector of class scores, the output is {fmt(output_shape)}")
    return settings


def fmt(shape):
    return "x".join(str(d) for d in shape)


def load(path):
    with open(path, "rb") as f:
        return parse(f.read())


# --- the torch model -------------------------------------------------------------

POST = {  # fused `activation=`; leaky_relu takes the layer default alpha
    "none": lambda x: x, "relu": F.relu, "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "sigmoid": torch.sigmoid, "tanh": torch.tanh,
}


class _PaddedPool(nn.Module):
    """A pool whose padding exceeds half its kernel, which torch's pooling
    modules refuse: pad explicitly (-inf for max, zeros for the mean, which
    count), then pool without padding."""

    def __init__(self, kind, kernel, stride, pad):
        super().__init__()
        self.kind, self.kernel, self.stride, self.pad = kind, kernel, stride, pad

    def forward(self, x):
        fill = -math.inf if self.kind == "maxpool" else 0.0
        x = F.pad(x, (self.pad[1], self.pad[1], self.pad[0], self.pad[0]), value=fill)
        pool = F.max_pool2d if self.kind == "maxpool" else F.avg_pool2d
        return pool(x, self.kernel, self.stride)


def make_module(layer, x):
    """The torch module of a layer, sized from its (first) input tensor x."""
    k = layer.keys
    if layer.kind == "conv2d":
        return nn.Conv2d(x.shape[1], k["filters"], k["kernel"], stride=k["stride"], padding=k["pad"],
                         dilation=k["dilation"], groups=k["groups"], bias=k["bias"])
    if layer.kind in ("maxpool", "avgpool"):
        if any(p > kk // 2 for p, kk in zip(k["pad"], k["kernel"])):
            return _PaddedPool(layer.kind, k["kernel"], k["stride"], k["pad"])
        if layer.kind == "maxpool":
            return nn.MaxPool2d(k["kernel"], k["stride"], k["pad"])
        return nn.AvgPool2d(k["kernel"], k["stride"], k["pad"], ceil_mode=False, count_include_pad=True)
    if layer.kind == "global_avgpool":
        return nn.AdaptiveAvgPool2d(1)
    if layer.kind == "flatten":
        return nn.Flatten()
    if layer.kind == "dense":
        return nn.Linear(x[0].numel(), k["units"], bias=k["bias"])
    if layer.kind == "batchnorm":
        norm = nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm1d
        return norm(x.shape[1], eps=k["eps"], momentum=k["momentum"])
    if layer.kind == "dropout":
        return nn.Dropout(k["rate"])
    if layer.kind == "leaky_relu":
        return nn.LeakyReLU(k["alpha"])
    if layer.kind == "softmax":
        return nn.Softmax(dim=1)  # over channels, or a flat vector's only axis
    if layer.kind in ("relu", "sigmoid", "tanh"):
        return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[layer.kind]()
    return None  # add and concat have no module


class Model(nn.Module):
    """The network as a torch module. Submodules are registered under the
    layer names (any identifier, even one of nn.Module's own attribute names),
    so state_dict() keys are `NAME.weight` etc. `shapes` maps each layer (and
    'input') to its output shape at batch 1, as torch computed it."""

    def __setattr__(self, name, value):
        # Keep plain attributes out of the module table, so that a layer named
        # like one (`training`, `net`) neither hides it nor is hidden.
        if isinstance(value, (nn.Module, torch.Tensor)):
            super().__setattr__(name, value)
        else:
            object.__setattr__(self, name, value)

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.post = {layer.name: POST[layer.keys.get("activation", "none")] for layer in net.layers}
        # Build layer by layer from a dry run at batch 1, so that every size a
        # module needs comes from a real tensor. eval() keeps the dry run off
        # the batchnorm statistics and dropout's random stream.
        probe = {"input": torch.zeros((1,) + net.input)}
        with torch.no_grad():
            for layer in net.layers:
                xs = [probe[i] for i in layer.inputs]
                module = make_module(layer, xs[0])
                if module is not None:
                    self._modules[layer.name] = module.eval()
                probe[layer.name] = self.apply_layer(layer, xs)
        self.train()
        self.shapes = {name: tuple(t.shape) for name, t in probe.items()}
        for layer in net.layers:  # torch and the spec's formulas must agree
            if self.shapes[layer.name][1:] != layer.shape:
                raise AssertionError(f"netfile: torch gives {layer.name} the shape "
                                     f"{fmt(self.shapes[layer.name][1:])}, the spec's rules {fmt(layer.shape)}")

    def module(self, name):
        """The layer's torch module, or None (add, concat)."""
        return self._modules.get(name)

    def apply_layer(self, layer, xs):
        if layer.kind == "dense":
            y = self._modules[layer.name](xs[0].flatten(1))  # implicit flatten, C,H,W order
        elif layer.kind == "add":
            y = xs[0]
            for x in xs[1:]:
                y = y + x
        elif layer.kind == "concat":
            y = torch.cat(xs, dim=1)
        else:
            y = self._modules[layer.name](xs[0])
        return self.post[layer.name](y)

    def forward(self, x, all_outputs=False):
        """The output, or with all_outputs a dict of every layer's output
        (and 'input'). x: batch x one example's shape."""
        if tuple(x.shape[1:]) != self.net.input:
            raise ValueError(f"input of shape {tuple(x.shape)}, the network takes N x {fmt(self.net.input)}")
        outputs = {"input": x}
        for layer in self.net.layers:
            outputs[layer.name] = self.apply_layer(layer, [outputs[i] for i in layer.inputs])
        return outputs if all_outputs else outputs[self.net.output.name]

    def logits(self, x):
        """The output before a final softmax (the spec's cross_entropy input)."""
        last = self.net.output
        if last.kind != "softmax":
            return self(x)
        return self(x, all_outputs=True)[last.inputs[0]]

    def layer_parameters(self, name):
        module = self._modules.get(name)
        return sum(p.numel() for p in module.parameters()) if module is not None else 0


def build_model(net):
    return Model(net)


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


# --- training semantics ----------------------------------------------------------

def initialize(model, generator=None):
    """Draws the parameters by each layer's `init=` rule (same distributions
    as cnnc, not the same numbers): `default` is PyTorch's uniform
    +-1/sqrt(fan_in) for weights and biases; the explicit schemes draw the
    weights and zero the biases. Batchnorm starts at weight 1, bias 0, mean 0,
    variance 1."""
    with torch.no_grad():
        for layer in model.net.layers:
            module = model.module(layer.name)
            if layer.kind == "batchnorm":
                module.reset_parameters()
                continue
            if layer.kind not in ("conv2d", "dense"):
                continue
            weight = module.weight
            fan_in = weight[0].numel()
            fan_out = weight.shape[0] * weight[0][0].numel()  # torch's: receptive field x outputs
            init = layer.keys["init"]
            if init == "default":
                bound = 1 / math.sqrt(fan_in)
                weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)
                continue
            if init == "zeros":
                weight.zero_()
            elif init == "he_uniform":
                bound = math.sqrt(6 / fan_in)
                weight.uniform_(-bound, bound, generator=generator)
            elif init == "he_normal":
                weight.normal_(0, math.sqrt(2 / fan_in), generator=generator)
            elif init == "xavier_uniform":
                bound = math.sqrt(6 / (fan_in + fan_out))
                weight.uniform_(-bound, bound, generator=generator)
            elif init == "xavier_normal":
                weight.normal_(0, math.sqrt(2 / (fan_in + fan_out)), generator=generator)
            if module.bias is not None:
                module.bias.zero_()
    return model


def loss(model, x, target):
    """The mean loss of the `train` settings: cross_entropy on integer labels
    from the logits (before a final softmax), or mse against targets shaped
    like the output (mean over all elements, as torch.nn.MSELoss)."""
    settings = model.net.train
    if not settings:
        raise ValueError(f"network {model.net.name} has no train settings")
    if settings["loss"] == "cross_entropy":
        return F.cross_entropy(model.logits(x).flatten(1), target.long())
    return F.mse_loss(model(x), target)


def make_optimizer(model):
    settings = model.net.train
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"],
                               nesterov=settings["nesterov"], weight_decay=settings["weight_decay"])
    return torch.optim.Adam(model.parameters(), lr=settings["lr"], betas=(settings["beta1"], settings["beta2"]),
                            eps=settings["eps"], weight_decay=settings["weight_decay"])


def make_scheduler(optimizer, net):
    """The lr schedule, to be stepped once per epoch; None for constant."""
    settings = net.train
    if settings["lr_schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, settings["step_size"], settings["gamma"])
    if settings["lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings["epochs"], eta_min=0)
    return None


# --- command line --------------------------------------------------------------------

def main(argv):
    if len(argv) != 3 or argv[1] != "params":
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        net = load(argv[2])
    except ValueError as e:
        print(f"{argv[2]}: error: {e}", file=sys.stderr)
        return 1
    model = build_model(net)
    width = max(len(layer.name) for layer in net.layers)
    print(f"network {net.name}, input {fmt(net.input)}")
    for layer in net.layers:
        shape = fmt(model.shapes[layer.name][1:])
        print(f"{layer.name:{width}}  {layer.kind:14} {shape:14} {model.layer_parameters(layer.name):>13,}")
    print(f"total: {parameter_count(model):,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
