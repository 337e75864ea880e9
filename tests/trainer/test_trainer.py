#!/usr/bin/env python3
"""The trainer executable (`cnnc --emit trainer`) through its command line.

Compiles a small conv net with --emit trainer, trains it for one epoch on a
synthetic two-class IDX dataset written here (bright top half vs. bright
bottom half, with noise), then checks the metrics CSV, the saved weights and
checkpoint, `eval`'s accuracy and confusion matrix, `predict` on PNG files
written here, and that bad usage, a missing data directory, a wrong-sized
image and a missing or failing C++ compiler are clear errors (exit 1) that
leave no partial file.

usage: test_trainer.py PATH/TO/cnnc
"""
import gzip
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib

CSV_HEADER = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second,seconds"

TINY_NET = """\
network tiny
input 1x28x28
conv1: conv2d filters=4 kernel=5 activation=relu
pool1: maxpool kernel=4
fc1:   dense units=10         # IDX datasets have 10 classes; this one uses two
softmax
train loss=cross_entropy optimizer=adam lr=0.01 batch=32 epochs=1 seed=3
"""

# No `train` settings, and quick to compile: for the error paths.
FLAT_NET = """\
network flat
input 784
fc: dense units=10
"""

failures = []


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        failures.append(what)


def run(command, env=None, cwd=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    return result.returncode, result.stdout, result.stderr


def example(label, rng):
    """A 28x28 image: class 0 bright in the top half, class 1 in the bottom."""
    pixels = bytearray(28 * 28)
    for y in range(28):
        bright = (y < 14) == (label == 0)
        for x in range(28):
            base = 200 if bright else 30
            pixels[y * 28 + x] = max(0, min(255, base + rng.randint(-30, 30)))
    return bytes(pixels)


def write_idx(directory, prefix, count, rng, compress):
    labels = [rng.randint(0, 1) for _ in range(count)]
    images = struct.pack(">IIII", 0x803, count, 28, 28) + b"".join(example(l, rng) for l in labels)
    label_bytes = struct.pack(">II", 0x801, count) + bytes(labels)
    for name, data in ((prefix + "-images-idx3-ubyte", images), (prefix + "-labels-idx1-ubyte", label_bytes)):
        if compress:
            with gzip.open(os.path.join(directory, name + ".gz"), "wb") as f:
                f.write(data)
        else:
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)


def write_png(path, width, height, rows, color):
    """A minimal 8-bit PNG: gray (color type 0) or RGB (2), no filtering."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if color else 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) +
                chunk(b"IEND", b""))


def gray_rows(label, rng):
    pixels = example(label, rng)
    return [pixels[y * 28:(y + 1) * 28] for y in range(28)]


def leftovers(directory):
    return [n for n in os.listdir(directory) if n.startswith(".cnnc")]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    cnnc = os.path.abspath(sys.argv[1])
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="cnnc-trainer-test-") as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        write_idx(data, "train", 600, rng, compress=False)
        write_idx(data, "t10k", 200, rng, compress=True)
        with open(os.path.join(tmp, "tiny.net"), "w") as f:
            f.write(TINY_NET)

        # ---- cnnc --emit trainer ----
        code, out, err = run([cnnc, os.path.join(tmp, "tiny.net"), "-o", os.path.join(tmp, "tiny.a"),
                              "--emit", "trainer"])
        check(code == 0, f"cnnc --emit trainer succeeds (exit {code}) {err.strip()[-2000:]}")
        trainer = os.path.join(tmp, "tiny")
        check(all(os.path.exists(os.path.join(tmp, n)) for n in ("tiny", "tiny.a", "tiny.h")),
              "--emit trainer writes tiny, and implies tiny.a and tiny.h")
        check(os.access(trainer, os.X_OK), "the trainer is executable")
        check("wrote " in out and "tiny" in out, "cnnc reports the trainer it wrote")
        check(not leftovers(tmp), "no scratch directory is left behind")
        if code != 0:
            return

        # ---- usage ----
        code, out, err = run([trainer, "--help"])
        check(code == 0 and "usage:" in out and "predict" in out, "--help prints the usage, exit 0")
        for args, message in (([], "no command"),
                              (["fit"], "unknown command 'fit'"),
                              (["train"], "train needs --data"),
                              (["train", "--data"], "option --data needs a value"),
                              (["train", "--data", data, "--bogus"], "unknown option '--bogus'"),
                              (["train", "--data", data, "--epochs", "two"], "option --epochs takes an integer"),
                              (["train", "--data", data, "--lr", "-1"], "option --lr takes a positive number"),
                              (["eval", "--data", data], "eval needs --load"),
                              (["predict", "--load", "w.safetensors"], "predict needs one or more IMAGE.png")):
            code, out, err = run([trainer] + args)
            check(code == 1 and message in err and "usage:" in err and err.startswith("tiny: error: "),
                  f"{' '.join(args) or '(no arguments)'}: exit 1 with '{message}' and the usage (got {code}: {err[:200]!r})")

        missing = os.path.join(tmp, "no-such-data")
        code, out, err = run([trainer, "train", "--data", missing, "--save", os.path.join(tmp, "x.safetensors")])
        check(code == 1 and err.startswith("tiny: error: ") and "no-such-data" in err,
              f"a missing data directory is a clear error naming it (got {code}: {err.strip()!r})")
        check(not os.path.exists(os.path.join(tmp, "x.safetensors")), "a failed run saves no weights")

        # ---- train ----
        weights = os.path.join(tmp, "w.safetensors")
        metrics = os.path.join(tmp, "metrics.csv")
        code, out, err = run([trainer, "train", "--data", data, "--epochs", "1", "--log", metrics,
                              "--save", weights, "--progress", "lines"], cwd=tmp)
        check(code == 0, f"train succeeds (exit {code}) {err.strip()[-2000:]}")
        check("test accuracy:" in out and "images/s:" in out, "train prints the test accuracy and images/s")
        check(os.path.exists(weights), "train saves the weights to --save")
        check(os.path.exists(os.path.join(tmp, "w.ckpt.safetensors")),
              "train writes the checkpoint beside the weights (W.ckpt.safetensors)")
        if os.path.exists(metrics):
            with open(metrics) as f:
                lines = f.read().splitlines()
            check(lines[:1] == [CSV_HEADER], f"the CSV header is the documented one (got {lines[:1]})")
            check(len(lines) == 2, f"one CSV row for one epoch (got {len(lines) - 1})")
            if len(lines) == 2:
                fields = lines[1].split(",")
                check(len(fields) == 7 and fields[0] == "1", f"the row is epoch 1 with 7 fields: {lines[1]}")
                values = [float(v) for v in fields]
                check(all(0 <= values[i] <= 1 for i in (2, 4)), "the accuracies are fractions")
                check(values[5] > 0, "images/s is positive")
        else:
            check(False, "train writes the --log CSV")

        # ---- eval ----
        code, out, err = run([trainer, "eval", "--data", data, "--load", weights])
        check(code == 0, f"eval succeeds (exit {code}) {err.strip()[-1000:]}")
        accuracy = None
        for line in out.splitlines():
            if line.startswith("test accuracy:"):
                accuracy = float(line.split()[2])
        check(accuracy is not None and accuracy > 0.8,
              f"eval's accuracy is well above chance (0.5): {accuracy}")
        check("confusion matrix" in out and "true\\pred" in out, "eval prints the confusion matrix")

        # ---- predict ----
        pngs = []
        for label in (0, 1):
            path = os.path.join(tmp, f"gray{label}.png")
            write_png(path, 28, 28, gray_rows(label, rng), color=False)
            pngs.append((path, label))
            path = os.path.join(tmp, f"rgb{label}.png")
            rows = [bytes(v for p in row for v in (p, p, p)) for row in gray_rows(label, rng)]
            write_png(path, 28, 28, rows, color=True)
            pngs.append((path, label))
        code, out, err = run([trainer, "predict", "--load", weights] + [p for p, _ in pngs])
        check(code == 0, f"predict succeeds (exit {code}) {err.strip()}")
        predictions = {}
        for line in out.splitlines():
            path, _, rest = line.partition(": class ")
            if rest:
                predictions[path] = int(rest.split()[0])
        for path, label in pngs:
            check(predictions.get(path) == label,
                  f"predict {os.path.basename(path)}: class {label} (got {predictions.get(path)})")

        wrong = os.path.join(tmp, "wrong.png")
        write_png(wrong, 20, 10, [bytes(20)] * 10, color=False)
        code, out, err = run([trainer, "predict", "--load", weights, wrong])
        check(code == 1 and "wrong.png" in err and "10x20" in err and "28x28" in err,
              f"a wrong-sized image is an error naming the file and both sizes ({err.strip()!r})")
        code, out, err = run([trainer, "predict", "--load", os.path.join(tmp, "none.safetensors"), pngs[0][0]])
        check(code == 1 and "none.safetensors" in err, f"missing weights are an error naming the file ({err.strip()!r})")

        # ---- the compiler missing or failing; a network without train settings ----
        flat_dir = os.path.join(tmp, "flat")
        os.mkdir(flat_dir)
        with open(os.path.join(flat_dir, "flat.net"), "w") as f:
            f.write(FLAT_NET)
        flat = os.path.join(flat_dir, "flat")
        compile_flat = [cnnc, os.path.join(flat_dir, "flat.net"), "-o", flat + ".a", "--emit", "lib,trainer"]
        for cxx, message in (("/nonexistent/c++", "cannot run the C++ compiler '/nonexistent/c++'"),
                             ("false", "the C++ compiler failed")):
            code, out, err = run(compile_flat, env=dict(os.environ, CXX=cxx))
            check(code == 1 and message in err, f"CXX={cxx}: exit 1 with '{message}' (got {code}: {err.strip()[:300]!r})")
            check(not os.path.exists(flat) and not leftovers(flat_dir),
                  f"CXX={cxx}: no partial trainer and no scratch left")
        env = dict(os.environ)
        env.pop("CXX", None)
        code, out, err = run(compile_flat, env=env)
        check(code == 0 and os.path.exists(flat), f"a network without train settings gets a trainer too ({err.strip()[-500:]})")
        if code == 0:
            code, out, err = run([flat, "train", "--data", data])
            check(code == 1 and "no train settings" in err, f"training it is a clear error ({err.strip()!r})")

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all trainer checks passed")


if __name__ == "__main__":
    main()
