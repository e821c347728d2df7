#!/usr/bin/env bash
# Benchmark: time to load the 60k Fashion-MNIST training images into an f32 tensor
# (release build). Target: under 0.5 s. Prints the machine and the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p bottleneck-data --example bench_load
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
"${CARGO_TARGET_DIR:-target}/release/examples/bench_load" "${1:-7}"
