#!/usr/bin/env bash
# Benchmark: load a folder of CelebA-like JPEGs at 64×64 with the image-folder source
# (release build). Generates N images (default 100,000; mixed sizes around CelebA's
# 178×218) once into a cache folder, then runs `bottleneck data inspect images` twice: the
# first load walks the folder, the second reads the cached file list. Prints images/s,
# peak RSS and the list time of each, then the memory of Fashion-MNIST and CIFAR-10 as
# loaded (CIFAR-10 from random records in its format when it is not installed).
# Usage: scripts/bench-images.sh [N]
# Environment: BENCH_IMAGES_DIR=DIR (default: the cache dir's bench-images-N)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100000}"
cache="${BOTTLENECK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bottleneck}"
dir="${BENCH_IMAGES_DIR:-$cache/bench-images-$n}"
cargo build --release --locked --workspace --bins --examples
target="$(realpath "${CARGO_TARGET_DIR:-target}")/release"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
t0=$(date +%s.%N)
"$target/examples/make_images" "$dir" "$n"
echo "generated in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s ($(du -sh "$dir" | cut -f1))"
# A fresh index cache, so the first load walks the folder.
index=$(mktemp -d)
trap 'rm -rf "$index"' EXIT
for pass in first second; do
  log="$index/$pass.log"
  BOTTLENECK_CACHE_DIR="$index" /usr/bin/time -f '%M %e' -o "$index/$pass.time" \
    "$target/bottleneck" data inspect images --path "$dir" --image-size 64 >"$log"
  read -r rss_kib wall <"$index/$pass.time"
  echo "$pass load: $(grep -m1 'listed from' "$log")"
  echo "  $(grep -m1 'decoded' "$log")"
  echo "  $(grep -m1 'memory' "$log"); peak RSS $((rss_kib / 1024)) MiB; whole command ${wall} s"
done
for name in fashion-mnist cifar10; do
  if out=$("$target/bottleneck" data inspect "$name" 2>/dev/null); then
    echo "$name: $(grep -m1 'memory' <<<"$out")"
  elif [ "$name" = cifar10 ]; then
    # No CIFAR-10 here (it needs the network): the same six binary batches, records of a
    # label byte and 3×32×32 random pixel bytes, measure what the loader keeps of them.
    fake="$index/cifar-10-batches-bin"
    mkdir -p "$fake"
    python3 - "$fake" <<'PY'
import os, sys
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        for _ in range(10000):
            f.write(bytes([os.urandom(1)[0] % 10]) + os.urandom(3072))
PY
    out=$("$target/bottleneck" data inspect cifar10 --dir "$index")
    echo "cifar10 (not installed; random records in its format, 50,000 + 10,000): $(grep -m1 'memory' <<<"$out")"
  else
    echo "$name: not found (bottleneck data fetch $name)"
  fi
done
