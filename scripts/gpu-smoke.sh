#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds bottleneck with `--features cuda` (release),
# trains experiments/fashion-dense.toml and fashion-conv.toml for 2 epochs on cuda:0 and
# on the CPU (same seed, same data order, same initial weights), checks that each epoch's
# training loss and the test MSE agree within 2%, and prints samples/s of both, plus
# PyTorch on the same GPU when torch with CUDA is importable (scripts/bench_pytorch.py
# --device cuda).
#
#   scripts/gpu-smoke.sh
# Environment:
#   BOTTLENECK=PATH   a `cuda` binary to use instead of building one
#   CUDA_ROOT=DIR     a CUDA toolkit (default: the one of `nvcc` on PATH, else PyPI's
#                     NVIDIA wheels in target/cuda-venv, as scripts/check-cuda.sh uses)
#   CUDA_COMPUTE_CAP  e.g. 90 (default: what nvidia-smi reports for GPU 0)
#   SMOKE_MODELS="dense conv"   SMOKE_EPOCHS=2   TORCH_PY=python3 (a Python with torch)
#   BOTTLENECK_DATA_DIR=DIR   Fashion-MNIST elsewhere than Debian's folder (both sides)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh
. scripts/lib/cuda.sh
export PATH="$HOME/.cargo/bin:$PATH"
models="${SMOKE_MODELS:-dense conv}"
epochs="${SMOKE_EPOCHS:-2}"
command -v nvidia-smi >/dev/null || { echo "gpu-smoke: no nvidia-smi: this machine has no NVIDIA driver" >&2; exit 1; }
gpu=$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader | head -1)
[ -n "$gpu" ] || { echo "gpu-smoke: nvidia-smi lists no GPU" >&2; exit 1; }
echo "GPU 0: $gpu"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-$(echo "$gpu" | awk -F', ' '{print $3}' | tr -d .)}"
run_env=(env)
if [ -z "${BOTTLENECK:-}" ]; then
  export CARGO_TARGET_DIR="$PWD/target/cuda"
  if [ -z "${CUDA_ROOT:-}" ] && command -v nvcc >/dev/null; then
    CUDA_ROOT=$(dirname "$(dirname "$(command -v nvcc)")")
  fi
  if [ -n "${CUDA_ROOT:-}" ]; then
    # A system toolkit: its own stub libcuda.so links; the driver's loads at run time.
    export CUDA_ROOT CUDA_PATH="$CUDA_ROOT" PATH="$CUDA_ROOT/bin:$PATH"
    export RUSTFLAGS="${RUSTFLAGS:-} -L native=$CUDA_ROOT/lib64 -L native=$CUDA_ROOT/lib64/stubs"
    run_env=(env LD_LIBRARY_PATH="$CUDA_ROOT/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  else
    cuda_from_wheels "${CUDA_VENV:-$PWD/target/cuda-venv}" "$CARGO_TARGET_DIR/links"
    # The wheels' libraries, not the link folder: the driver's libcuda.so.1 must load.
    run_env=(env LD_LIBRARY_PATH="$CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  fi
  echo "building with nvcc $(nvcc --version | tail -1), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"
  cargo build --release --locked --features cuda --bin bottleneck
  BOTTLENECK="$CARGO_TARGET_DIR/release/bottleneck"
fi
bin=$(realpath "$BOTTLENECK")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

table="| model | device | s/epoch | samples/s | test MSE |\n| --- | --- | --- | --- | --- |\n"
status=0
for m in $models; do
  for d in cuda:0 cpu; do
    echo "== $m on $d, $epochs epochs"
    "${run_env[@]}" "$bin" run "experiments/fashion-$m.toml" "train.epochs=$epochs" "device=$d" \
      --quiet --no-report --runs "$work/${d%%:*}" >/dev/null
  done
  out=$(python3 - "$work" "$m" <<'PY'
import csv, glob, json, sys
work, model = sys.argv[1], sys.argv[2]
def run(dev):
    d = glob.glob(f"{work}/{dev}/fashion-{model}/*/")[0]
    m = json.load(open(d + "manifest.json"))
    loss = [float(r["train_loss"]) for r in csv.DictReader(open(d + "metrics.csv"))]
    secs = [float(r["epoch_seconds"]) for r in csv.DictReader(open(d + "timings.csv"))]
    return m, loss, secs
(g, gl, gs), (c, cl, cs) = run("cuda"), run("cpu")
assert g["device"] == "cuda:0" and c["device"] == "cpu", (g["device"], c["device"])
worst = max(abs(a - b) / b for a, b in zip(gl + [g["metrics"]["test_mse"]], cl + [c["metrics"]["test_mse"]]))
print(f"loss per epoch, cuda:0 {['%.6f' % v for v in gl]} cpu {['%.6f' % v for v in cl]}; "
      f"test MSE {g['metrics']['test_mse']:.6f} / {c['metrics']['test_mse']:.6f}; worst gap {100 * worst:.3f}% "
      f"on {g['gpu']['name']} (driver {g['gpu'].get('driver')})", file=sys.stderr)
for name, m, secs in (("cuda:0", g, gs), ("cpu", c, cs)):
    print(f"| {model} | bottleneck {name} | {sum(secs) / len(secs):.2f} | "
          f"{m['metrics']['mean_samples_per_second']:.0f} | {m['metrics']['test_mse']:.6f} |")
sys.exit(0 if worst <= 0.02 else 3)
PY
  ) || { status=1; echo "gpu-smoke: FAILED: the $m curves on cuda:0 and the CPU differ by more than 2%" >&2; }
  table+="$out\n"
  py="${TORCH_PY:-python3}"
  if "$py" -c 'import torch, numpy; assert torch.cuda.is_available()' 2>/dev/null; then
    json=$("$py" scripts/bench_pytorch.py --model "$m" --epochs "$epochs" --device cuda \
      --data-dir "${BOTTLENECK_DATA_DIR:-/usr/share/datasets/fashion-mnist}" | tail -1)
    row=$(python3 - "$json" "$m" <<'PY'
import json, sys
r, model = json.loads(sys.argv[1]), sys.argv[2]
secs, sps = r["epoch_seconds"], r["samples_per_second"]
print(f"| {model} | PyTorch {r['torch']} {r['device']} | {sum(secs) / len(secs):.2f} | "
      f"{sum(sps) / len(sps):.0f} | {r['test_mse']:.6f} |")
PY
    )
    table+="$row\n"
  else
    echo "(no torch with CUDA in $py: no PyTorch row; TORCH_PY=... names one)"
  fi
done
echo
echo "GPU 0: $gpu; $(date -u +%F); $epochs epochs each"
printf "%b" "$table"
exit $status
