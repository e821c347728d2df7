#!/usr/bin/env bash
# Benchmark: time to load the 60k Fashion-MNIST training images into a split of bytes
# (release build). Target: under 0.5 s. Prints the machine and the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
# The whole workspace's examples, as the release build makes them: building one package
# alone resolves other features and recompiles polars and candle.
cargo build --release --locked --workspace --bins --examples
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
"${CARGO_TARGET_DIR:-target}/release/examples/bench_load" "${1:-7}"
