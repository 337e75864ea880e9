#!/usr/bin/env bash
# The whole test suite, from a clean clone: installs what it needs, builds,
# runs every test, then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs every test under them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

jobs=$(nproc)

echo "== build and test (release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== build and test (ASan + UBSan)"
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCNNC_SANITIZE=ON
cmake --build build-sanitize -j "$jobs"
# The whole-network PyTorch comparisons spend their time in Halide's code
# generation, not in cnnc's own code; under the sanitizers it runs on three
# networks that between them use every layer kind.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
/usr/bin/python3 tests/pytorch/test_forward.py build-sanitize/compiler/cnnc lenet5 resnet18 inception_block
ctest --test-dir build-sanitize --output-on-failure -j "$jobs" -E "pytorch_forward|pytorch_training"
