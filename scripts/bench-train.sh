#!/usr/bin/env bash
# Benchmark: training throughput (samples/s) and seconds per epoch of the dense and conv
# defaults on Fashion-MNIST, release build. Usage: scripts/bench-train.sh [EPOCHS]
# For the side-by-side comparison with PyTorch see scripts/bench-vs-pytorch.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-1}"
cargo build --release --locked --bin bottleneck
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/release/bottleneck"
out=$(mktemp -d)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for exp in fashion-dense fashion-conv; do
  (cd "$out" && "$bin" run "$OLDPWD/experiments/$exp.toml" "train.epochs=$epochs" --quiet >/dev/null)
  dir=$(ls -d "$out/runs/$exp"/*/ | tail -1)
  awk -F, -v e="$exp" 'NR>1 {s+=$2; r+=$3; n++} END {printf "%-14s %d epoch(s): %.2f s/epoch, %.0f samples/s\n", e, n, s/n, r/n}' "$dir/timings.csv"
  grep -o '"test_mse": [0-9.e-]*' "$dir/manifest.json" | sed "s/^/$exp /"
done
rm -rf "$out"
