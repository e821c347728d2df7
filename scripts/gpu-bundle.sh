#!/usr/bin/env bash
# Builds here, on a machine without a GPU, what scripts/gpu-smoke.sh needs on a GPU machine
# that has a driver but no Rust toolchain and no package registry: a release `cuda` binary
# (xz-compressed), the non-system libraries it links and Fashion-MNIST, in DIR (default
# target/gpu-bundle).
#
#   scripts/gpu-bundle.sh [DIR]
# then, on the GPU machine, in a checkout of the same commit, with the CUDA libraries
# (cudart, cuBLAS, cuRAND, NVRTC of the same major version) on LD_LIBRARY_PATH:
#   xz -dk DIR/bottleneck.xz; export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:DIR/lib
#   BOTTLENECK=DIR/bottleneck BOTTLENECK_DATA_DIR=DIR/fashion-mnist scripts/gpu-smoke.sh
# Environment:
#   CUDA_WHEELS_FOR   the CUDA of the GPU machine's driver: 13.0 (default; driver 580) or
#                     13.5 (scripts/lib/cuda.sh). The kernels are PTX that the driver
#                     compiles at start; a driver refuses PTX from a newer nvcc.
#   CUDA_COMPUTE_CAP  default 90 (H100, H200)
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_WHEELS_FOR="${CUDA_WHEELS_FOR:-13.0}" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
. scripts/lib/venv.sh
. scripts/lib/cuda.sh
export PATH="$HOME/.cargo/bin:$PATH"
out="${1:-target/gpu-bundle}"
data=/usr/share/datasets/fashion-mnist
[ -f "$data/train-images-idx3-ubyte.gz" ] || { echo "error: Fashion-MNIST is missing from $data: run scripts/setup.sh --deps" >&2; exit 1; }
export CARGO_TARGET_DIR="$PWD/target/cuda-$CUDA_WHEELS_FOR"
cuda_from_wheels "$PWD/target/cuda-venv-$CUDA_WHEELS_FOR" "$CARGO_TARGET_DIR/links"
echo "building with nvcc $(nvcc --version | tail -1), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION"
cargo build --release --locked --features cuda --bin bottleneck
rm -rf "$out.tmp"
mkdir -p "$out.tmp/fashion-mnist"
cp "$data"/*.gz "$out.tmp/fashion-mnist/"
# The binary, stripped and xz-compressed (94 MB → 14 MB: the device tool carries 64 MiB).
strip -o "$out.tmp/bottleneck" "$CARGO_TARGET_DIR/release/bottleneck"
xz -T0 -6 "$out.tmp/bottleneck"
# The shared libraries it needs beyond glibc and CUDA (the figures' font and PNG stack),
# from this machine: a GPU machine's image may lack them. Put last on LD_LIBRARY_PATH.
mkdir -p "$out.tmp/lib"
ldd "$CARGO_TARGET_DIR/release/bottleneck" | awk '$3 ~ /^\// {print $3}' |
  grep -vE '/(libc|libm|libgcc_s|libstdc\+\+|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  while read -r l; do cp -L "$l" "$out.tmp/lib/"; done
rm -rf "$out"
mv "$out.tmp" "$out"
echo "bundle: $out ($(du -sh "$out" | cut -f1)): bottleneck.xz (cuda, sm_$CUDA_COMPUTE_CAP, CUDA $CUDA_WHEELS_FOR), lib/, fashion-mnist/"
