#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time
# (default 60 s each): `scripts/fuzz.sh [SECONDS] [TARGET...]`.
# Not part of CI; run it after changing a parser.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true

bash scripts/setup.sh
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCNNC_FUZZ=ON
cmake --build build-fuzz -j "$(nproc)"

targets=("$@")
if ((${#targets[@]} == 0)); then
  for source in fuzz/fuzz_*.cpp; do targets+=("$(basename "$source" .cpp)"); done
fi

for target in "${targets[@]}"; do
  name=${target#fuzz_}
  seeds=fuzz/corpus/$name
  work=build-fuzz/corpus-$name
  mkdir -p "$work"
  echo "== $target for ${seconds}s (seeds: $seeds)"
  ./build-fuzz/fuzz/"$target" "$work" "$seeds" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -artifact_prefix=build-fuzz/"$target"-
done
