#!/usr/bin/env bash
# On a GPU machine without Rust, in a checkout of the commit that scripts/gpu-bundle.sh
# built DIR from (default target/gpu-bundle): unpacks the binary, finds the CUDA libraries
# (a toolkit in /usr/local/cuda, else a Python's NVIDIA wheels), then checks
#   device = "auto"  → the manifest says cuda:0 and describes the GPU;
#   scripts/gpu-smoke.sh for each of MODELS (default "dense conv vae"), SMOKE_EPOCHS=3;
#   sweep --gpus auto of fashion-bottleneck-sweep at train=debug (every point on cuda:0);
#   resume --device cpu of the GPU run (the manifest says cpu).
# The smoke logs go to LOG_DIR (default DIR).
#
#   scripts/gpu-bundle-run.sh [DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
B=$(realpath "${1:-target/gpu-bundle}")
logs="${LOG_DIR:-$B}"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
echo "$(nproc) CPU cores; $(date -u)"
xz -dkf "$B/bottleneck.xz" && chmod +x "$B/bottleneck" || exit 1
has_cuda() { for d in "$@"; do [ -e "$d/libcublas.so.13" ] && [ -e "$d/libcurand.so.10" ] && [ -e "$d/libcudart.so.13" ] && { echo "$d"; return; }; done; }
wheels=$(python3 -c 'import nvidia.cu13; print(list(nvidia.cu13.__path__)[0] + "/lib")' 2>/dev/null || true)
lib=$(has_cuda /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $wheels)
[ -n "$lib" ] || { echo "error: no CUDA 13 libraries (libcublas.so.13, libcurand.so.10, libcudart.so.13) in /usr/local/cuda or a Python's nvidia.cu13" >&2; exit 1; }
export LD_LIBRARY_PATH="$lib${wheels:+:$wheels}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}:$B/lib"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
if ldd "$B/bottleneck" | grep "not found"; then echo "error: libraries missing" >&2; exit 1; fi
export BOTTLENECK=$B/bottleneck BOTTLENECK_DATA_DIR=$B/fashion-mnist SMOKE_EPOCHS=${SMOKE_EPOCHS:-3}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
status=0
echo "== device=auto, train=debug (the first CUDA process on a machine waits while the driver compiles candle's PTX)"
timeout 120 "$BOTTLENECK" run experiments/fashion-dense.toml train=debug device=auto --no-report --runs "$w/auto" 2>&1 | tail -3
grep -h -A7 '"device"' "$w"/auto/*/*/manifest.json
grep -q '"device": "cuda:0"' "$w"/auto/*/*/manifest.json || { echo "FAILED: device=auto did not take the GPU"; status=1; }
for m in ${MODELS:-dense conv vae}; do
  SMOKE_MODELS=$m timeout 300 scripts/gpu-smoke.sh 2>&1 | tee "$logs/smoke-$m.log" || status=1
done
echo "== sweep --gpus auto, train=debug"
timeout 120 "$BOTTLENECK" sweep experiments/fashion-bottleneck-sweep.toml train=debug --gpus auto --no-report --runs "$w/sweep" 2>&1 | tail -9
n=$(grep -h '"device": "cuda:0"' "$w"/sweep/*/*/*/manifest.json | wc -l)
echo "points on cuda:0: $n of 6"; [ "$n" = 6 ] || status=1
echo "== resume the GPU run on the CPU"
d=$(ls -d "$w"/auto/*/*/ | head -1)
timeout 60 "$BOTTLENECK" resume "$d" --epochs 2 --device cpu --no-report 2>&1 | tail -2
grep -q '"device": "cpu"' "$d/manifest.json" || { echo "FAILED: the resumed run's manifest does not say cpu"; status=1; }
echo "gpu-bundle-run: $([ $status = 0 ] && echo all checks passed || echo FAILED)"
exit $status
