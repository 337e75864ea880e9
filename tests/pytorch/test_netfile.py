"""The PyTorch reference of the language (netfile.py) on its own, and on small
networks that use every layer kind and key, against cnnc.

    python3 test_netfile.py CNNC       (or --torch-only)

- the parser: auto-naming, defaults, continuation lines, comments, `from`
  lists, `pad=same`, train settings; every file in tests/errors and a list of
  further invalid snippets must be refused;
- the torch model: state_dict names as API.md's safetensors table, layer names
  that shadow nn.Module attributes, a dry run that leaves batchnorm statistics
  alone, the training helpers;
- coverage networks: torch and `cnnc check` agree on every layer's kind,
  output shape and parameter count.
"""

import pathlib
import sys
import tempfile

import torch

import netfile
import test_param_counts

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Valid networks that together use every layer kind, every key and the
# lexical corners of the language.
COVERAGE = {
    "coverage_image": """
# Every image layer and key, odd sizes, non-square kernels.
network coverage_image
input 3x17x19
c1: conv2d filters=8 kernel=3x5 stride=2x1 pad=1x2 dilation=1x2 \\
           activation=leaky_relu init=he_normal
bn: batchnorm eps=1e-3 momentum=0.2
leaky_relu alpha=0.2
g:  conv2d filters=8 kernel=3 pad=same groups=4 bias=false activation=tanh init=xavier_uniform
dw: conv2d filters=16 kernel=3 pad=same dilation=2 stride=2 groups=8 init=he_uniform
sigmoid
maxpool kernel=3 stride=2 pad=1
avgpool kernel=2x3 stride=1 pad=1
tanh
side: conv2d filters=4 kernel=1 from=input init=xavier_normal activation=sigmoid
side_pool: avgpool kernel=5x7 stride=4 pad=1 from=side
cat: concat from=tanh1,side_pool
relu
sum: add from=cat,relu1 activation=relu
sm: softmax
gap: global_avgpool
fc: dense units=10 bias=false init=zeros
""",
    "coverage_flat": """
network coverage_flat   # flat vectors only
input 20
flatten
d1: dense units=12 activation=sigmoid
bn1: batchnorm
dropout rate=0
d2: dense units=12 from=flatten1 activation=tanh
both: concat from=d1,d2,bn1
d3: dense units=36
d4: dense units=36 from=d1
sum: add from=both,d3,d4 activation=leaky_relu
dropout
out: dense units=5 activation=none
softmax
train loss=cross_entropy optimizer=adam lr=1e-3 beta1=0.8 beta2=0.99 eps=1e-7 \\
      weight_decay=1e-4 lr_schedule=cosine
train batch=16 epochs=3 seed=42
""",
    "coverage_lexical": "\ufeffnetwork coverage_lexical\r\n"
                        "input\t1x9x9   # tabs, CRLF, a byte-order mark\r\n"
                        "\r\n"
                        "a:conv2d filters=2 kernel=3 \\   # a comment after the backslash\r\n"
                        "   pad = 1   # spaces around '='\r\n"
                        "conv2d filters=+2 kernel=3 pad=same\r\n"
                        "b : maxpool kernel=2 stride=1\r\n"
                        "dropout rate=.25\r\n"
                        "leaky_relu alpha=-1E-1\r\n"
                        "train loss=mse lr_schedule=step step_size=2 gamma=0.5 optimizer=sgd \\\r\n"
                        "      momentum=0.9 nesterov=true",
    "coverage_names": """
network coverage_names
input 2x6x6
training: conv2d filters=3 kernel=3
forward: batchnorm
net: conv2d filters=3 kernel=1
state_dict: add from=net,training
post: flatten
train: dense units=4
shapes: relu
""",
}

# Invalid snippets beyond tests/errors: (what, text).
INVALID = [
    ("relu with two inputs", "network n\ninput 784\na: dense units=3\nrelu from=a,input\n"),
    ("add with one input", "network n\ninput 784\na: dense units=3\nadd from=a\n"),
    ("add without from", "network n\ninput 784\nadd\n"),
    ("from naming itself", "network n\ninput 784\nfc: dense units=3 from=fc\n"),
    ("global_avgpool on a vector", "network n\ninput 784\nglobal_avgpool\n"),
    ("conv2d on a vector", "network n\ninput 784\nconv2d filters=2 kernel=1\n"),
    ("concat of image and vector", "network n\ninput 1x4x4\na: flatten\nconcat from=a,input\n"),
    ("four-dimensional input", "network n\ninput 1x2x3x4\nrelu\n"),
    ("sgd key with adam", "network n\ninput 4\nrelu\ntrain loss=mse optimizer=adam momentum=0.9\n"),
    ("gamma without step", "network n\ninput 4\nrelu\ntrain loss=mse gamma=0.5\n"),
    ("step without step_size", "network n\ninput 4\nrelu\ntrain loss=mse lr_schedule=step\n"),
    ("nesterov without momentum", "network n\ninput 4\nrelu\ntrain loss=mse nesterov=true\n"),
    ("layer named input", "network n\ninput 4\ninput: relu\n"),
    ("name without kind", "network n\ninput 4\nfc:\n"),
    ("list with a space", "network n\ninput 4\na: relu\nb: relu\nconcat from=a ,b\n"),
    ("list on a plain key", "network n\ninput 4\ndense units=3,4\n"),
    ("upper-case kind", "network n\ninput 4\nReLU\n"),
    ("upper-case dimension", "network n\ninput 1x8x8\nmaxpool kernel=2X2\n"),
    ("whole number as decimal", "network n\ninput 4\ndense units=3.0\n"),
    ("infinite number", "network n\ninput 4\nleaky_relu alpha=1e999\n"),
    ("pool key on conv", "network n\ninput 1x8x8\nconv2d filters=1 kernel=3 units=3\n"),
    ("dilation on a pool", "network n\ninput 1x8x8\nmaxpool kernel=2 dilation=2\n"),
    ("three-part kernel", "network n\ninput 1x8x8\nmaxpool kernel=2x2x2\n"),
    ("even kernel with pad=same", "network n\ninput 1x8x8\nconv2d filters=1 kernel=3x2 pad=same\n"),
    ("dilated kernel too large", "network n\ninput 1x8x8\nconv2d filters=1 kernel=3 dilation=4\n"),
    ("groups not dividing filters", "network n\ninput 4x8x8\nconv2d filters=6 kernel=1 groups=4\n"),
    ("dense output too large", "network n\ninput 4\ndense units=2147483647\nrelu\nconcat from=dense1,relu1\n"),
    ("named train statement", "network n\ninput 4\nx: train loss=mse\n"),
    ("network keyword as name", "network namespace\ninput 4\nrelu\n"),
    ("macro as network name", "network NULL\ninput 4\nrelu\n"),
    ("no layers", "network n\ninput 4\n"),
    ("momentum above 1", "network n\ninput 4\nbatchnorm momentum=1.5\n"),
    ("continuation into the next statement", "network n\ninput 4 \\\nrelu\n"),
]


def expect(condition, message, problems):
    if not condition:
        problems.append(message)


def parser_checks():
    problems = []
    net = netfile.parse("network n\ninput 1x8x8\n"
                        "conv2d filters=2 kernel=3\n"
                        "c: conv2d filters=2 kernel=3 pad=same\n"
                        "conv2d filters=2 kernel=5 dilation=2 pad=same\n"
                        "maxpool kernel=2\n"
                        "avgpool kernel=3x1 stride=1 \\\n"
                        "  # the backslash joined this comment line; the statement ends here\n"
                        "train loss=mse\n"
                        "train seed=3 # keys merge\n")
    names = [layer.name for layer in net.layers]
    expect(names == ["conv2d1", "c", "conv2d3", "maxpool1", "avgpool1"], f"auto names {names}", problems)
    conv = net.layer("conv2d1").keys
    expect(conv == {"filters": 2, "kernel": (3, 3), "stride": (1, 1), "pad": (0, 0), "dilation": (1, 1),
                    "groups": 1, "bias": True, "activation": "none", "init": "default"}, f"conv keys {conv}", problems)
    expect(net.layer("c").keys["pad"] == (1, 1), "pad=same of a 3x3 kernel", problems)
    expect(net.layer("conv2d3").keys["pad"] == (4, 4), "pad=same of a dilated 5x5 kernel", problems)
    expect(net.layer("maxpool1").keys["stride"] == (2, 2), "pool stride defaults to the kernel", problems)
    expect(net.layer("avgpool1").keys["stride"] == (1, 1), "explicit pool stride", problems)
    expect(net.layer("c").inputs == ["conv2d1"], "default input is the previous layer", problems)
    expect(net.layers[0].inputs == ["input"], "the first layer reads the input", problems)
    expect(net.shapes["avgpool1"] == (2, 1, 3), f"shapes {net.shapes}", problems)
    expect(net.train == {"loss": "mse", "optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": False,
                         "weight_decay": 0.0, "lr_schedule": "constant", "batch": 64, "epochs": 10, "seed": 3},
           f"train settings {net.train}", problems)
    net = netfile.parse("network n\ninput 3\nb: batchnorm\nd: dropout\nl: leaky_relu\n")
    expect(net.layer("b").keys == {"eps": 1e-5, "momentum": 0.1}, "batchnorm defaults", problems)
    expect(net.layer("d").keys == {"rate": 0.5}, "dropout default", problems)
    expect(net.layer("l").keys == {"alpha": 0.01}, "leaky_relu default", problems)
    expect(netfile.parse("network n\ninput 3\nrelu \\").layers[0].name == "relu1", "backslash at the end", problems)

    rejected = 0
    for path in sorted((ROOT / "tests" / "errors").glob("*.net")):
        try:
            netfile.load(path)
            problems.append(f"accepts tests/errors/{path.name}")
        except ValueError:
            rejected += 1
    for what, text in INVALID:
        try:
            netfile.build_model(netfile.parse(text))
            problems.append(f"accepts {what}")
        except ValueError:
            rejected += 1
    return problems, rejected


def model_checks():
    problems = []
    net = netfile.parse("network n\ninput 3x6x6\nconv1: conv2d filters=4 kernel=3\nbn1: batchnorm\n"
                        "fc1: dense units=5\nbn2: batchnorm\nsoftmax\ntrain loss=cross_entropy\n")
    model = netfile.build_model(net)
    keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    expect(keys == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                    "fc1.weight", "fc1.bias", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var"],
           f"state_dict keys {keys}", problems)
    expect(tuple(model.state_dict()["fc1.weight"].shape) == (5, 64), "dense weight layout [units, in]", problems)
    expect(isinstance(model.module("bn2"), torch.nn.BatchNorm1d), "batchnorm on a vector is 1-d", problems)
    expect(model.training and all(m.training for m in model.modules()), "a new model is in train mode", problems)
    stats = model.state_dict()
    expect(all(stats[f"{b}.running_mean"].eq(0).all() and stats[f"{b}.running_var"].eq(1).all()
               and stats[f"{b}.num_batches_tracked"] == 0 for b in ("bn1", "bn2")),
           "the dry run touched batchnorm statistics", problems)

    torch.manual_seed(0)
    netfile.initialize(model, torch.Generator().manual_seed(1))
    x, labels = torch.rand(4, 3, 6, 6), torch.tensor([0, 1, 2, 3])
    logits = model.logits(x)
    expect(torch.allclose(model(x), torch.softmax(logits, 1)), "softmax output over the logits", problems)
    want = torch.nn.functional.cross_entropy(logits, labels)
    expect(torch.allclose(netfile.loss(model, x, labels), want), "cross_entropy from the logits", problems)
    optimizer = netfile.make_optimizer(model)
    expect(isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.01, "default optimizer", problems)
    expect(netfile.make_scheduler(optimizer, net) is None, "constant schedule", problems)

    # Layer names that are nn.Module attributes still work as submodules.
    model = netfile.build_model(netfile.parse(COVERAGE["coverage_names"]))
    keys = {k.split(".")[0] for k in model.state_dict()}
    expect(keys == {"training", "forward", "net", "train"}, f"odd names' state_dict {keys}", problems)
    model.eval()
    expect(not model.training and not model.module("forward").training, "eval() with a layer named training",
           problems)
    expect(model(torch.rand(2, 2, 6, 6)).shape == (2, 4), "forward with a layer named forward", problems)

    # Padding beyond half the kernel, which torch's pools refuse.
    net = netfile.parse("network n\ninput 1x3x3\nm: maxpool kernel=2 pad=2 stride=1\n"
                        "a: avgpool kernel=2 pad=2 stride=1 from=input\n")
    model = netfile.build_model(net)
    outs = model(torch.ones(1, 1, 3, 3), all_outputs=True)
    expect(outs["m"].shape == (1, 1, 6, 6) and outs["m"][0, 0, 0, 0] == -float("inf") and outs["m"][0, 0, 2, 2] == 1,
           "max pool padding never wins", problems)
    expect(outs["a"][0, 0, 1, 1] == 0.25 and outs["a"][0, 0, 2, 2] == 1, "padded zeros count in the mean", problems)
    return problems


def coverage_checks(cnnc):
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name, text in COVERAGE.items():
            path = pathlib.Path(work) / f"{name}.net"
            path.write_bytes(text.encode("utf-8"))
            problems = []
            try:
                net = netfile.load(path)
                model = netfile.build_model(net)
                x = torch.rand((2,) + net.input)
                for mode in (model.train, model.eval):
                    mode()
                    y = model(x)
                    expect(tuple(y.shape[1:]) == net.output.shape, f"output shape {tuple(y.shape)}", problems)
                if net.train:
                    netfile.make_scheduler(netfile.make_optimizer(model), net)
                if cnnc:
                    problems += test_param_counts.compare(cnnc, path, net, model)
            except (ValueError, AssertionError) as e:
                problems.append(str(e))
            results.append((name, problems))
    return results


def main(argv):
    torch_only = "--torch-only" in argv
    args = [a for a in argv[1:] if a != "--torch-only"]
    if not torch_only and len(args) != 1:
        print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    cnnc = None if torch_only else args[0]
    parser_problems, rejected = parser_checks()
    results = [(f"parser ({rejected} invalid files refused)", parser_problems), ("model", model_checks())]
    results += coverage_checks(cnnc)
    passed = failed = 0
    for name, problems in results:
        print(("FAIL " if problems else "ok   ") + name + "".join(f"\n     {p}" for p in problems), flush=True)
        failed += bool(problems)
        passed += not problems
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
