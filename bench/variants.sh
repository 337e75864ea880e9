#!/bin/sh
# Builds a static timing program for schedule variants of one workload:
#   bench/variants.sh BUILD_DIR ID:VARIANT [[ID:]VARIANT]...
# then: HL_NUM_THREADS=2 [CNNC_SPIN_US=2000] taskset -c 0,1 BUILD_DIR/variants/conv_variants 20
set -e
build=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
out=$build/variants
rm -rf "$out" && mkdir -p "$out"
"$build/conv_generator" variants "$out" "$@"
${CXX:-g++} -O2 -std=c++17 -static -I"$out" -I"$here" -I"$here/../schedules" -I/usr/include/halide14 \
  "$here/conv_variants.cpp" "$here/peak.cpp" "$here/../runtime/ThreadPool.cpp" -I "$here/../runtime" -mavx512f -mfma -mavx2 \
  "$out/variants.a" "$out/runtime.a" -o "$out/conv_variants" -lpthread -ldl
