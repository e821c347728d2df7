#!/usr/bin/env bash
# Benchmark: wall time of a local bottleneck sweep (the six k of
# experiments/fashion-bottleneck-sweep.toml) with different job × thread splits, release
# build. Usage:
#   scripts/bench-sweep.sh [EPOCHS] [SPLITS...]     default: 1 epoch per point, splits "1 2"
# A split N means --jobs N (threads per point = cores / N). Prints one line per split and
# the fastest. With EPOCHS=20 it is the full default sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-1}"
shift || true
splits=("$@")
if ((${#splits[@]} == 0)); then splits=(1 "$(nproc)"); fi
cargo build --release --locked --bin bottleneck
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/release/bottleneck"
exp="$(pwd)/experiments/fashion-bottleneck-sweep.toml"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $epochs epoch(s) per point"
best=""
best_s=""
for jobs in "${splits[@]}"; do
  out=$(mktemp -d)
  t0=$(date +%s.%N)
  (cd "$out" && "$bin" sweep "$exp" "train.epochs=$epochs" --jobs "$jobs" --quiet >/dev/null)
  t1=$(date +%s.%N)
  dir=$(ls -d "$out/runs/fashion-bottleneck-sweep"/*/ | tail -1)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  threads=$(($(nproc) / jobs))
  mean_epoch=$(awk -F, 'NR==1 {for (i=1;i<=NF;i++) if ($i=="mean_epoch_seconds") c=i} NR>1 {s+=$c; n++} END {printf "%.1f", s/n}' "$dir/summary.csv")
  printf '%d job(s) x %d thread(s): sweep wall %.1f s, mean epoch %s s per point\n' "$jobs" "$threads" "$wall" "$mean_epoch"
  if [ -z "$best_s" ] || awk -v a="$wall" -v b="$best_s" 'BEGIN {exit !(a < b)}'; then
    best="$jobs x $threads"
    best_s="$wall"
  fi
  cp "$dir/summary.csv" "/tmp/bench-sweep-$jobs.csv"
  rm -rf "$out"
done
echo "fastest: $best ($best_s s); summaries in /tmp/bench-sweep-<jobs>.csv"
