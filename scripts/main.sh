#!/usr/bin/env bash
# The main job, from a clean clone: install dependencies, build cnnc, check
# the example network and compile it into a library and header (out/).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"

./build/compiler/cnnc check examples/lenet5.net
mkdir -p out
./build/compiler/cnnc examples/lenet5.net -o out/lenet5.a -v
