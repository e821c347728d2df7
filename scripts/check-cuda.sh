#!/usr/bin/env bash
# Checks the `cuda` build on a machine with no GPU and no CUDA toolkit: nvcc, headers and
# libraries come from PyPI's NVIDIA wheels in a throw-away venv, the driver library from a
# generated stub (scripts/lib/cuda.sh). Then:
#   1. clippy -D warnings on the whole workspace with `--features cuda` (the CUDA-only code);
#   2. the binary builds and links (candle's .cu kernels compiled by nvcc for
#      CUDA_COMPUTE_CAP, default 90);
#   3. the binary runs as on a machine without a GPU (the stub reports none): `device =
#      "auto"` trains on the CPU and says so in the manifest; `cuda:0`, `sweep --gpus auto`
#      or `--gpus 0` and a Slurm sweep on `cuda:0` without a GPU `gres` are clear errors
#      before any directory is made.
#
#   scripts/check-cuda.sh            (from the repository root or anywhere)
#   scripts/check-cuda.sh --cudnn    the same with `--features cudnn` (+ cuDNN's wheel)
#   CUDA_COMPUTE_CAP=80 scripts/check-cuda.sh
#   CUDA_VENV=DIR  the venv with the wheels (default target/cuda-venv, kept)
# Builds into target/cuda (its own RUSTFLAGS; the default build is not touched).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh
. scripts/lib/cuda.sh
export PATH="$HOME/.cargo/bin:$PATH"
start=$(date +%s)
feature=cuda
case "${1:-}" in
  "") ;;
  --cudnn) feature=cudnn ;;
  *) echo "usage: scripts/check-cuda.sh [--cudnn]" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="$PWD/target/cuda"
cuda_from_wheels "${CUDA_VENV:-$PWD/target/cuda-venv}" "$CARGO_TARGET_DIR/links" "$feature"
echo "nvcc: $(nvcc --version | tail -1); CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION"
# Libraries for the binaries built here: the wheels', and the stub as the driver.
run_env=(env LD_LIBRARY_PATH="$CARGO_TARGET_DIR/links:$CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")

t=$(date +%s)
cargo clippy --workspace --all-targets --locked --features "$feature" -- -D warnings
echo "check-cuda: clippy --features $feature passed in $(( $(date +%s) - t )) s"
t=$(date +%s)
cargo build --locked --features "$feature" --bin bottleneck
bin="$CARGO_TARGET_DIR/debug/bottleneck"
echo "check-cuda: built and linked $bin in $(( $(date +%s) - t )) s"

# The binary on a machine without a GPU.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "check-cuda: FAILED: $*" >&2; exit 1; }
e="$PWD/experiments/fashion-dense.toml"
(
  cd "$work"
  if "${run_env[@]}" "$bin" run "$e" train=debug device=cuda:0 2>err.txt; then fail "device=cuda:0 ran without a GPU"; fi
  grep -q 'device = "cuda:0"` is not available: this process sees 0 GPUs' err.txt || fail "device=cuda:0: $(cat err.txt)"
  [ ! -e runs ] || fail "device=cuda:0 made a run directory"
  echo "ok: device=cuda:0 without a GPU: $(cat err.txt)"
  if "${run_env[@]}" "$bin" sweep "$e" train=debug model.latent_dim=2,4 --gpus auto 2>err.txt; then fail "--gpus auto ran"; fi
  grep -q 'sees no GPU' err.txt || fail "--gpus auto: $(cat err.txt)"
  echo "ok: --gpus auto without a GPU: $(cat err.txt)"
  for gpus in 0 0,0; do
    if "${run_env[@]}" "$bin" sweep "$e" train=debug model.latent_dim=2,4 --gpus "$gpus" 2>err.txt; then fail "--gpus $gpus ran"; fi
    grep -q "sees no GPU\|listed twice" err.txt || fail "--gpus $gpus: $(cat err.txt)"
    echo "ok: --gpus $gpus without a GPU: $(cat err.txt)"
  done
  if "${run_env[@]}" "$bin" sweep "$e" train=debug model.latent_dim=2,4 device=cuda:0 --launcher slurm --dry-run 2>err.txt; then
    fail "a Slurm sweep on cuda:0 without a GPU gres was accepted"
  fi
  grep -q 'launcher.slurm.gres' err.txt || fail "slurm: $(cat err.txt)"
  "${run_env[@]}" "$bin" sweep "$e" train=debug model.latent_dim=2,4 device=cuda:0 'launcher.slurm.gres="gpu:1"' \
    --launcher slurm --dry-run >dry.txt || fail "slurm with gres: $(cat dry.txt)"
  grep -q -- '--device cuda:0 "$DIR"' dry.txt || fail "the Slurm task does not train on cuda:0"
  [ ! -e runs ] || fail "a sweep check made a directory"
  echo "ok: Slurm sweeps on a GPU need a GPU gres; with one the tasks train on cuda:0"
  "${run_env[@]}" "$bin" run "$e" train=debug train.max_batches=5 device=auto --quiet --no-report >out.txt 2>err.txt ||
    fail "device=auto: $(cat err.txt)"
  m=$(ls runs/fashion-dense/*/manifest.json)
  python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); assert m["device"] == "cpu" and m["status"] == "done", m' "$m" ||
    fail "device=auto: $m"
  echo "ok: device=auto without a GPU trained on the CPU ($(grep -o 'test_mse [0-9.]*' out.txt))"
)
echo "check-cuda: all checks passed in $(( $(date +%s) - start )) s" >&2
