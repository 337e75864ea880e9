#!/usr/bin/env bash
# The main job, from a clean clone: install dependencies, build cnnc, check
# LeNet-5 and compile it into a library, header and trainer (out/), train it
# on Fashion-MNIST with the example's settings, report its test accuracy and
# speed, then build the example app and classify a few test images.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target cnnc

./build/compiler/cnnc check examples/lenet5.net
mkdir -p out
./build/compiler/cnnc examples/lenet5.net -o out/lenet5.a --emit lib,header,trainer -v

# The .net file's settings: Adam, lr 0.002 with a cosine schedule, batch 64,
# 10 epochs, seed 1. A checkpoint is written after each epoch
# (out/lenet5.ckpt.safetensors): `--resume` it to continue an interrupted run.
out/lenet5 train --data fashion-mnist --log out/metrics.csv --save out/lenet5.safetensors

# The report, from the last row of the metrics CSV.
python3 - out/metrics.csv <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
last = rows[-1]
rate = sum(float(r["images_per_second"]) for r in rows) / len(rows)
print(f"LeNet-5 on Fashion-MNIST after {last['epoch']} epochs: "
      f"test accuracy {100 * float(last['test_accuracy']):.2f}%, "
      f"training {rate:,.0f} images/s (mean over epochs), "
      f"{sum(float(r['seconds']) for r in rows):.0f} s in all")
PY

# The example app, built with the printed link line (+ libpng).
c++ -std=c++17 -O2 -Iout examples/classify/classify.cpp out/lenet5.a \
    -lpng -lpthread -ldl -lz -o out/classify
mkdir -p out/samples
out/classify --load out/lenet5.safetensors --data fashion-mnist --show 5 --export out/samples
out/lenet5 predict --load out/lenet5.safetensors out/samples/*.png
