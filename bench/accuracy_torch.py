"""PyTorch's side of the training accuracy benchmark (bench/accuracy.py).

Trains a .net file's network with PyTorch as cnnc's generated trainer does:
the model from tests/pytorch/netfile.py, PyTorch's default initialization
(netfile.initialize, the .net file's init= rules), the file's `train`
settings through netfile.loss/make_optimizer/make_scheduler (for LeNet-5:
cross_entropy on the logits, the trailing softmax fused into the loss,
torch.optim.Adam(lr=0.002), CosineAnnealingLR(T_max=epochs) stepped once per
epoch), batches of the file's size in an order shuffled each epoch (the last,
partial batch kept), pixels byte/255 and nothing else. After every epoch the
test set is evaluated in eval() mode.

    /usr/bin/python3 bench/accuracy_torch.py --data fashion-mnist --seed 1 \
        [--net examples/lenet5.net] [--epochs N] [--threads 2] [--log metrics.csv]

--data is fashion-mnist, mnist (the installed locations of README's Datasets
section, or $CNNC_DATA/NAME) or a directory of gzipped or plain IDX files.
The metrics CSV has the trainer's columns (epoch, train_loss,
train_accuracy, test_loss, test_accuracy, images_per_second, seconds); the
train columns are the means over the epoch's batches as they were trained,
images_per_second counts the training only, seconds include the evaluation.
Each epoch prints one line; the last line is `test accuracy: P%`.

--eval-weights W.safetensors trains nothing: it loads the weights (PyTorch's
names and layouts, as cnnc's trainer saves them) and prints the test set's
loss and accuracy as PyTorch computes them, a check on the trainer's own.
"""

import argparse
import gzip
import math
import os
import struct
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "pytorch"))
import netfile  # noqa: E402

DATASETS = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/local/share/cnnc/datasets/mnist",
}


def dataset_dir(name):
    if name in DATASETS:
        if os.environ.get("CNNC_DATA"):
            return os.path.join(os.environ["CNNC_DATA"], name)
        return DATASETS[name]
    return name


def read_idx(directory, stem):
    """An IDX file as a uint8 tensor, gzipped (by content) or not."""
    for path in (os.path.join(directory, stem + ".gz"), os.path.join(directory, stem)):
        if os.path.exists(path):
            break
    else:
        raise SystemExit(f"accuracy_torch: no {stem}[.gz] in {directory}")
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    zero, kind, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or kind != 0x08:
        raise SystemExit(f"accuracy_torch: {path} is not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    body = data[4 + 4 * rank:]
    if len(body) != math.prod(dims):
        raise SystemExit(f"accuracy_torch: {path} holds {len(body)} bytes, its header says {math.prod(dims)}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def load_split(directory, prefix, shape):
    images = read_idx(directory, f"{prefix}-images-idx3-ubyte")
    labels = read_idx(directory, f"{prefix}-labels-idx1-ubyte").long()
    if images.shape[0] != labels.shape[0]:
        raise SystemExit(f"accuracy_torch: {prefix}: {images.shape[0]} images but {labels.shape[0]} labels")
    x = images.float().div_(255.0).reshape((images.shape[0],) + shape)
    return x, labels


@torch.no_grad()
def evaluate(model, x, y, batch=1000):
    model.eval()
    loss_sum, correct = 0.0, 0
    for first in range(0, x.shape[0], batch):
        xb, yb = x[first:first + batch], y[first:first + batch]
        logits = model.logits(xb).flatten(1)
        loss_sum += torch.nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train()
    return loss_sum / x.shape[0], correct / x.shape[0]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--net", default=os.path.join(ROOT, "examples", "lenet5.net"))
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="default: the .net file's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log", default=None, help="metrics CSV, one row per epoch")
    parser.add_argument("--eval-weights", metavar="W.safetensors", default=None,
                        help="only evaluate these weights (e.g. cnnc's trainer's --save) on the test set")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    net = netfile.load(args.net)
    settings = net.train
    if not settings or settings["loss"] != "cross_entropy":
        raise SystemExit("accuracy_torch: the network needs train settings with loss=cross_entropy")
    epochs = args.epochs if args.epochs is not None else settings["epochs"]
    net.train["epochs"] = epochs  # the cosine schedule's T_max
    batch = settings["batch"]

    directory = dataset_dir(args.data)
    train_x, train_y = load_split(directory, "train", net.input)
    test_x, test_y = load_split(directory, "t10k", net.input)

    if args.eval_weights:
        import safetensors_io
        model = netfile.build_model(net)
        tensors = {k: torch.tensor(v) for k, v in safetensors_io.read(args.eval_weights)[0].items()}
        model.load_state_dict(tensors, strict=True)
        test_loss, test_accuracy = evaluate(model, test_x, test_y)
        print(f"{args.eval_weights}: test loss {test_loss:.4f}, test accuracy: {100 * test_accuracy:.2f}%")
        return 0

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model = netfile.build_model(net)
    netfile.initialize(model, generator)
    optimizer = netfile.make_optimizer(model)
    scheduler = netfile.make_scheduler(optimizer, net)
    shuffle = torch.Generator().manual_seed(args.seed + 1_000_003)

    rows = []
    log = open(args.log, "w") if args.log else None
    if log:
        log.write("epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second,seconds\n")
        log.flush()
    n = train_x.shape[0]
    print(f"{net.name} on {args.data}: {n} train, {test_x.shape[0]} test images, batch {batch}, "
          f"{epochs} epochs, {settings['optimizer']} lr {settings['lr']}, schedule {settings['lr_schedule']}, "
          f"seed {args.seed}, {torch.get_num_threads()} threads", flush=True)
    for epoch in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(n, generator=shuffle)
        loss_sum, correct = 0.0, 0
        for first in range(0, n, batch):
            index = order[first:first + batch]
            xb, yb = train_x[index], train_y[index]
            optimizer.zero_grad(set_to_none=True)
            logits = model.logits(xb).flatten(1)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * xb.shape[0]
            correct += (logits.detach().argmax(1) == yb).sum().item()
        train_seconds = time.perf_counter() - start
        if scheduler is not None:
            scheduler.step()
        test_loss, test_accuracy = evaluate(model, test_x, test_y)
        seconds = time.perf_counter() - start
        row = (epoch + 1, loss_sum / n, correct / n, test_loss, test_accuracy, n / train_seconds, seconds)
        rows.append(row)
        if log:
            log.write("%d,%.6f,%.6f,%.6f,%.6f,%.1f,%.3f\n" % row)
            log.flush()
        print(f"epoch {epoch + 1}/{epochs}  train loss {row[1]:.4f} acc {100 * row[2]:.2f}%  "
              f"test loss {row[3]:.4f} acc {100 * row[4]:.2f}%  {row[5]:.0f} img/s  {row[6]:.1f} s", flush=True)
    if log:
        log.close()
    print(f"test accuracy: {100 * rows[-1][4]:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
